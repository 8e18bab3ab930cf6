"""Audio classification tasks of ``ssl-toolkit eval``, under the names the runner, the tests and
:mod:`ssl_toolkit.hear` import: task metadata (:mod:`.audio_tasks`), the embedding step
(:mod:`.audio_embedder`) and the clip embedding both share (:mod:`ssl_toolkit.audio.embedding`)."""
from ..audio.embedding import embed_clips, frontend_sample_rate, piece_spans, split_frontend
from .audio_embedder import AudioEmbedder
from .audio_tasks import AudioTaskData, Unit, load_task

__all__ = ["AudioEmbedder", "AudioTaskData", "Unit", "embed_clips", "frontend_sample_rate", "load_task",
           "piece_spans", "split_frontend"]
