"""Synthetic events in the seed format, and producing them to Kafka.

Product texts are multilingual (Turkish, as in the seed's data, plus others), so the
pipeline never meets only ASCII. `bad_fraction` mixes in malformed messages.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from typing import Dict, Iterator, List, Optional

from vectorstream.transforms.events import EVENT_TYPES, format_time

CATEGORIES = {
    "elektronik": [("Kablosuz Kulaklık", "Aktif gürültü engelleme, 30 saat pil ömrü, Bluetooth 5.3"),
                   ("Akıllı Saat", "Nabız ve uyku takibi, suya dayanıklı kasa, GPS"),
                   ("Dizüstü Bilgisayar", "16 GB bellek, 512 GB SSD, 14 inç ekran"),
                   ("Noise-cancelling headphones", "Over-ear, 40 hour battery, USB-C charging"),
                   ("Mechanical keyboard", "Hot-swappable switches, RGB backlight, aluminium case")],
    "giyim": [("Deri Ceket", "Hakiki kuzu derisi, slim fit, siyah"),
              ("Koşu Ayakkabısı", "Hafif file üst yüzey, yastıklı taban"),
              ("Wool sweater", "Merino wool crew neck, machine washable"),
              ("Regenjacke", "Wasserdichte Jacke mit Kapuze, atmungsaktiv")],
    "ev": [("Türk Kahvesi Makinesi", "Köpük kontrollü, 4 fincan kapasiteli"),
           ("Bambu Kesme Tahtası", "Doğal bambu, kolay temizlenir, üç boy"),
           ("Cafetière à piston", "Verre borosilicaté, 1 litre, filtre inox"),
           ("Robot vacuum cleaner", "Lidar navigation, auto-empty dock, app control")],
    "kitap": [("Suç ve Ceza", "Dostoyevski'nin klasik romanı, ciltli baskı"),
              ("Kürk Mantolu Madonna", "Sabahattin Ali, modern Türk edebiyatı"),
              ("The Pragmatic Programmer", "Software craftsmanship, 20th anniversary edition")],
    "spor": [("Yoga Matı", "Kaymaz yüzey, 6 mm kalınlık, taşıma askılı"),
             ("Dumbbell set", "Adjustable 2-24 kg, quick-change dial"),
             ("Bicicleta de montaña", "Cuadro de aluminio, 21 velocidades, frenos de disco")],
}
ADJECTIVES = ["Premium", "Kompakt", "Pro", "Eko", "Ultra", "Klasik", "Mini", "Max", "Lite", "Plus"]
PAYMENT = ["credit_card", "debit_card", "paypal", "bank_transfer", "cash_on_delivery"]


def catalog(size: int, seed: int = 7) -> List[Dict]:
    """`size` distinct products, each with a stable id, name, description and price."""
    rng = random.Random(seed)
    base = [(cat, name, desc) for cat, items in CATEGORIES.items() for name, desc in items]
    products = []
    for i in range(size):
        cat, name, desc = base[i % len(base)]
        variant = i // len(base)
        label = name if variant == 0 else f"{name} {ADJECTIVES[variant % len(ADJECTIVES)]} {variant}"
        products.append({
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"vectorstream-product-{i}")),
            "name": label, "description": desc if variant == 0 else f"{desc} (model {variant})",
            "category": cat, "price": round(rng.uniform(5, 3000), 2)})
    return products


def make_event(rng: random.Random, product: Dict, now: Optional[dt.datetime] = None) -> Dict:
    now = now or dt.datetime.now(dt.timezone.utc)
    event_type = rng.choice(EVENT_TYPES)
    quantity = rng.randint(1, 3)
    event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
             "timestamp": format_time(now), "user_id": f"user{rng.randint(1, 5000)}",
             "event_type": event_type, "session_id": f"session{rng.randint(1, 20000)}",
             "product": dict(product), "quantity": quantity,
             "total_amount": round(product["price"] * quantity, 2),
             "payment_method": rng.choice(PAYMENT)}
    if event_type == "search":
        event["search_query"] = product["name"].split()[0].lower()
    if event_type == "view":
        event["view_duration"] = round(rng.uniform(1, 300), 1)
    return event


BAD_KINDS = ["not json", "truncated", "array", "missing product", "negative price",
             "wrong type", "empty", "invalid utf-8", "unknown event_type", "bad timestamp"]


def make_bad(rng: random.Random, good: Dict, kind: Optional[str] = None) -> bytes:
    kind = kind or rng.choice(BAD_KINDS)
    text = json.dumps(good, ensure_ascii=False)
    if kind == "not json":
        return b"this is not json"
    if kind == "truncated":
        return text[: len(text) // 2].encode()
    if kind == "array":
        return b"[1, 2, 3]"
    if kind == "missing product":
        return json.dumps({k: v for k, v in good.items() if k != "product"}).encode()
    if kind == "negative price":
        return json.dumps({**good, "product": {**good["product"], "price": -5}}).encode()
    if kind == "wrong type":
        return json.dumps({**good, "quantity": "two"}).encode()
    if kind == "empty":
        return b""
    if kind == "invalid utf-8":
        return b'{"event_id": "\xff\xfe"}'
    if kind == "unknown event_type":
        return json.dumps({**good, "event_type": "teleport"}).encode()
    return json.dumps({**good, "timestamp": "yesterday"}).encode()


def generate(count: int, products: int = 1000, bad_fraction: float = 0.0,
             seed: Optional[int] = None) -> Iterator[tuple]:
    """Yields (key, value, event-or-None) triples; event is None for a malformed message."""
    rng = random.Random(seed)
    items = catalog(products)
    for _ in range(count):
        event = make_event(rng, rng.choice(items))
        if bad_fraction and rng.random() < bad_fraction:
            yield event["event_id"].encode(), make_bad(rng, event), None
        else:
            yield (event["event_id"].encode(),
                   json.dumps(event, ensure_ascii=False).encode("utf-8"), event)


def produce(bootstrap: str, topic: str, messages, rate: Optional[float] = None,
            config: Optional[Dict[str, str]] = None, partition: Optional[int] = None) -> int:
    """Sends (key, value, …) tuples (all to `partition` when given, else where their keys
    put them); `rate` caps messages per second. Returns the count."""
    from confluent_kafka import Producer
    from vectorstream.io.kafka_admin import send
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10,
                         "message.max.bytes": 16_000_000, **(config or {})})
    errors: list = []
    sent = 0
    started = time.monotonic()
    for item in messages:
        key, value = item[0], item[1]
        send(producer, topic, value, key, lambda err, _m: err and errors.append(err),
             partition=partition)
        sent += 1
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                producer.flush(ahead)
                time.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
    left = producer.flush(60)
    if left or errors:
        raise RuntimeError(f"{left + len(errors)} message(s) were not delivered to {topic}: "
                           f"{errors[:3]}")
    return sent
