"""MkDocs hook: the figures of benchmarks/results/ (made by the benchmarks, kept where they are made) are served
under results/ in the site, so the pages link them without a second copy in docs/."""

from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files, config):
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"results/{png.name}", abs_src_path=str(png)))
    return files
