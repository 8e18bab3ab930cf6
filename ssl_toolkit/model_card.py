"""The model card (``README.md``) of an export folder: YAML front matter in the model hubs' convention
(library_name, tags, pipeline_tag, license, datasets, model-index), then how to load the weights, what they were
trained on, the eval results beside their baselines and the weights' checksum. Plain Python; no hub client."""

from __future__ import annotations

from typing import Any, Optional

import yaml

TASK_TYPES = {"audio": "audio-classification", "image": "image-classification"}


def _percent(value) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}"


def _score(entry: Optional[dict]) -> str:
    if not entry:
        return "–"
    std = entry.get("std")
    return _percent(entry.get("mean")) + (f" ± {_percent(std)}" if std else "")


def _rows(results: dict) -> list[dict]:
    """One row per evaluated task entry: task, protocol, metric, the model's and each baseline's entry."""
    baselines = results.get("baselines") or {}
    rows = []
    for key, entry in (results.get("tasks") or {}).items():
        rows.append(
            {
                "key": key,
                "entry": entry,
                "baselines": {b["label"]: (b.get("tasks") or {}).get(key) for b in baselines.values()},
            }
        )
    return rows


def _model_index(name: str, modality: Optional[str], results: dict) -> list[dict]:
    entries = []
    for row in _rows(results):
        e = row["entry"]
        task = str(e.get("task", row["key"]))
        entries.append(
            {
                "task": {"type": TASK_TYPES.get(str(modality), "feature-extraction"), "name": task},
                "dataset": {"name": task, "type": task},
                "metrics": [
                    {
                        "type": str(e.get("metric", "accuracy")),
                        "value": round(100 * float(e["mean"]), 2),
                        "name": f"{e.get('protocol', 'linear')} {e.get('metric', 'accuracy')} (%)",
                        "verified": False,
                    }
                ],
            }
        )
    return [{"name": name, "results": entries}]


def front_matter(name: str, config: dict, datasets: list[str], results: Optional[dict], license: Optional[str]) -> dict:
    tags = ["ssl_toolkit", "self-supervised-learning"]
    for tag in (config.get("method"), config.get("modality"), config.get("architecture")):
        if tag and str(tag) not in tags:
            tags.append(str(tag))
    meta: dict[str, Any] = {"library_name": "ssl_toolkit", "tags": tags, "pipeline_tag": "feature-extraction"}
    if license:
        meta["license"] = license
    if datasets:
        meta["datasets"] = datasets
    if results:
        meta["model-index"] = _model_index(name, config.get("modality"), results)
    return meta


def render_model_card(
    name: str, config: dict, recipe: dict, datasets: list[str], results: Optional[dict], license: Optional[str]
) -> str:
    """The README.md text of an export folder named ``name`` (its ``config.json`` content is ``config``)."""
    meta = front_matter(name, config, datasets, results, license)
    training = config.get("training") or {}
    modality = config.get("modality")
    example = {
        "audio": 'X = enc.embed(["clip1.wav", "clip2.wav"])  # (N, {d}) numpy, waves at {sr} Hz',
        "image": 'X = enc.embed(["a.jpg", "b.png"])           # (N, {d}) numpy',
    }.get(str(modality), "z = enc(x)                                   # (B, {d})")
    frontend = " → ".join(s["name"] for s in config.get("frontend") or []) or "none"
    stats = next((s for s in (config.get("card") or {}).get("frontend_state", []) if "mean" in s and "std" in s), None)
    if stats is not None and isinstance(stats["mean"], (int, float)):
        frontend += f" (pre_norm mean {stats['mean']:.4f}, std {stats['std']:.4f})"
    data = recipe.get("data") or {}
    items = training.get("data_items")
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A {config.get('feature_dim')}-d {modality} encoder (`{config.get('architecture')}`) pretrained without "
        f"labels with {config.get('method') or 'a BYOL-family method'} by "
        f"ssl_toolkit {config.get('toolkit_version')}.",
        "",
        "## Use it",
        "",
        "```python",
        "import ssl_toolkit as sslt",
        "",
        'enc = sslt.load_encoder("PATH/TO/THIS/FOLDER")  # front end + encoder + card',
        example.format(d=config.get("feature_dim"), sr=config.get("sample_rate")),
        "```",
        "",
        "or, without installing the package (a clone of the ssl_toolkit repository):",
        "",
        "```python",
        "import torch",
        "",
        'enc = torch.hub.load("PATH/TO/ssl_toolkit", "encoder", source="local", path="PATH/TO/THIS/FOLDER")',
        "```",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| recipe | `{config.get('recipe_name') or '–'}` (`recipe.yaml`, sha256 `{config.get('recipe_sha256')}`) |",
        f"| method | {config.get('method') or '–'} |",
        f"| encoder | `{yaml.safe_dump(config.get('encoder'), default_flow_style=True, width=1000).strip()}` |",
        f"| front end | {frontend} |",
        f"| data | {', '.join(datasets) or '–'} ({items if items is not None else 'number of items not recorded'}"
        f"{' items' if items is not None else ''}) |",
        f"| steps | {training.get('steps', '–')} (into epoch "
        f"{training['epochs'] + 1 if isinstance(training.get('epochs'), int) else '–'}), batch "
        f"{data.get('batch_size', '–')}, precision {recipe.get('precision', '–')} |",
        f"| seed | {recipe.get('seed', '–')} |",
        "",
    ]
    if results:
        rows = _rows(results)
        labels = sorted({label for r in rows for label in r["baselines"]})
        lines += [
            "## Evaluation",
            "",
            f"`ssl-toolkit eval` ({results.get('name')}; {results.get('created', '')}), mean ± std over runs, %:",
            "",
            "| task | protocol | metric | this model | " + " | ".join(labels) + " |",
            "|---|---|---|---:|" + "---:|" * len(labels),
        ]
        for r in rows:
            e = r["entry"]
            lines.append(
                f"| {e.get('task', r['key'])} | {e.get('protocol', '')} | {e.get('metric', '')} | "
                f"**{_score(e)}** | " + " | ".join(_score(r["baselines"][lb]) for lb in labels) + " |"
            )
        lines.append("")
    lines += [
        "## Files",
        "",
        "| file | sha256 |",
        "|---|---|",
        f"| model.safetensors | `{config.get('weights_sha256')}` |",
        "",
        "`config.json` holds the weights card (encoder, front end and its statistics); `recipe.yaml` the "
        "resolved training recipe.",
        "",
    ]
    return "\n".join(lines)
