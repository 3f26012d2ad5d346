"""The multilingual USE v3 on CPU two ways (docs/performance.md, lever 23): the package's
numpy forward (what `--device cpu` runs now) against the PyTorch module built from the
same weights (what it ran before, and what a GPU runs), on the same texts, in separate
processes so that each pays its own imports:

    python docs/bench/use_backends.py numpy 2
    python docs/bench/use_backends.py torch 2

(the second argument: threads). Prints sentences/s at batches of 256 and 512, and the
seconds to import and load the model.
"""
import random
import sys
import time


def main():
    which, threads = sys.argv[1], int(sys.argv[2])
    random.seed(1)
    words = ("laptop kitap telefon bilgisayar şarj kablosu kulaklık siyah beyaz kırmızı "
             "ayakkabı koşu pamuklu tişört mutfak tencere çelik kahve makinesi oyun konsolu "
             "akıllı saat").split()
    texts = [" ".join(random.choice(words) for _ in range(random.randint(6, 30)))
             for _ in range(4000)]
    started = time.perf_counter()
    from vectorstream.transforms import use_model
    folder = use_model.resources()
    if which == "numpy":
        encode = use_model.NumpyUseEncoder(folder, threads=threads).encode
    else:
        import torch
        torch.set_num_threads(threads)
        encode = use_model.UseEncoder(folder).encode
    loaded = time.perf_counter()
    encode(texts[:64])
    for batch in (256, 512):
        began = time.perf_counter()
        for i in range(0, len(texts), batch):
            encode(texts[i:i + batch])
        print(f"{which}, {threads} threads, batches of {batch}: "
              f"{len(texts) / (time.perf_counter() - began):.0f} sentences/s")
    print(f"{which}: import and load {loaded - started:.2f} s")


if __name__ == "__main__":
    main()
