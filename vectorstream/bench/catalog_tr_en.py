"""A Turkish and English shop, for measuring what a user gets: 8 categories, 6 product
types each, every type sold as two Turkish and two English products (different brands),
and for every type one query in each language that names the need in other words than
the product (`docs/bench/retrieval.py`: queries → the right products; the recommendation
bench's shoppers buy from it).

Hand-written, held out: no model saw these lists, and the queries do not repeat the
products' names.
"""
from __future__ import annotations

import uuid
from typing import Dict, List, Tuple

# category -> [(type key, (TR name, TR description), (EN name, EN description),
#               TR query, EN query)]
TYPES: Dict[str, List[Tuple[str, Tuple[str, str], Tuple[str, str], str, str]]] = {
    "elektronik": [
        ("headphones", ("Kablosuz Kulaklık", "Aktif gürültü engelleme, 30 saat pil ömrü, Bluetooth"),
         ("Wireless Headphones", "Active noise cancelling, 30 hour battery, Bluetooth"),
         "otobüste müzik dinlemek için sessiz ortam sağlayan kulak üstü cihaz",
         "something to block out train noise while listening to music"),
        ("smartwatch", ("Akıllı Saat", "Nabız ve uyku takibi, GPS, suya dayanıklı kasa"),
         ("Smart Watch", "Heart rate and sleep tracking, GPS, water resistant case"),
         "bileğe takılan ve adım sayan telefon bağlantılı cihaz",
         "wrist device that counts my steps and shows notifications"),
        ("laptop", ("Dizüstü Bilgisayar", "16 GB bellek, 512 GB SSD, 14 inç ekran"),
         ("Laptop Computer", "16 GB memory, 512 GB SSD, 14 inch display"),
         "üniversite için taşınabilir hafif bilgisayar",
         "portable computer for programming at university"),
        ("phone", ("Akıllı Telefon", "6.1 inç ekran, üçlü kamera, 128 GB depolama"),
         ("Smartphone", "6.1 inch screen, triple camera, 128 GB storage"),
         "iyi fotoğraf çeken yeni cep telefonu",
         "a new mobile phone with a great camera"),
        ("speaker", ("Taşınabilir Hoparlör", "Bluetooth, su geçirmez, 12 saat çalma"),
         ("Portable Speaker", "Bluetooth, waterproof, 12 hours of playback"),
         "plajda müzik çalmak için ses sistemi",
         "loud music box to take to the beach"),
        ("keyboard", ("Mekanik Klavye", "RGB aydınlatma, değiştirilebilir tuşlar"),
         ("Mechanical Keyboard", "RGB backlight, hot-swappable switches"),
         "oyun oynarken yazmak için tıklamalı tuş takımı",
         "clicky typing device for gaming"),
    ],
    "giyim": [
        ("jacket", ("Deri Ceket", "Hakiki kuzu derisi, slim fit, siyah"),
         ("Leather Jacket", "Genuine lambskin, slim fit, black"),
         "motosiklet için siyah dış giyim",
         "black outerwear to wear on my motorbike"),
        ("running shoes", ("Koşu Ayakkabısı", "Hafif file üst yüzey, yastıklı taban"),
         ("Running Shoes", "Lightweight mesh upper, cushioned sole"),
         "maraton antrenmanı için rahat spor ayakkabı",
         "comfortable sneakers for marathon training"),
        ("sweater", ("Yün Kazak", "Merinos yünü, bisiklet yaka, makinede yıkanabilir"),
         ("Wool Sweater", "Merino wool, crew neck, machine washable"),
         "kışın üşümemek için sıcak örgü üst",
         "a warm knitted top for cold winter days"),
        ("raincoat", ("Yağmurluk", "Su geçirmez, kapüşonlu, nefes alan kumaş"),
         ("Raincoat", "Waterproof, hooded, breathable fabric"),
         "yağmurda ıslanmamak için kapüşonlu mont",
         "hooded coat so I stay dry in the rain"),
        ("jeans", ("Kot Pantolon", "Dar kesim, streç denim, koyu mavi"),
         ("Jeans", "Slim cut, stretch denim, dark blue"),
         "günlük giymek için mavi pantolon",
         "blue trousers for everyday wear"),
        ("dress", ("Yazlık Elbise", "Pamuklu, çiçek desenli, midi boy"),
         ("Summer Dress", "Cotton, floral print, midi length"),
         "sıcak havada giyilecek desenli kadın kıyafeti",
         "a light patterned outfit for women in hot weather"),
    ],
    "ev": [
        ("coffee maker", ("Türk Kahvesi Makinesi", "Köpük kontrollü, 4 fincan kapasiteli"),
         ("Turkish Coffee Machine", "Foam control, 4 cup capacity"),
         "sabahları köpüklü kahve pişiren mutfak aleti",
         "kitchen appliance to brew frothy coffee in the morning"),
        ("cutting board", ("Bambu Kesme Tahtası", "Doğal bambu, kolay temizlenir, üç boy"),
         ("Bamboo Cutting Board", "Natural bamboo, easy to clean, three sizes"),
         "sebze doğramak için ahşap mutfak gereci",
         "wooden kitchen surface for chopping vegetables"),
        ("vacuum", ("Robot Süpürge", "Lidar navigasyon, otomatik boşaltma, uygulama kontrolü"),
         ("Robot Vacuum Cleaner", "Lidar navigation, auto-empty dock, app control"),
         "evi kendi kendine temizleyen akıllı cihaz",
         "a device that cleans the floors by itself"),
        ("bedding", ("Nevresim Takımı", "Pamuk saten, çift kişilik, gri"),
         ("Duvet Cover Set", "Cotton sateen, double size, grey"),
         "yatak için yumuşak örtü seti",
         "soft covers for my bed and pillows"),
        ("lamp", ("Masa Lambası", "LED, ayarlanabilir parlaklık, USB şarj"),
         ("Desk Lamp", "LED, adjustable brightness, USB charging"),
         "gece kitap okumak için ışık",
         "light for reading at night on my table"),
        ("pan", ("Döküm Tava", "Yapışmaz, 28 cm, fırında kullanılabilir"),
         ("Cast Iron Pan", "Non-stick, 28 cm, oven safe"),
         "yumurta ve et kızartmak için ocak kabı",
         "something to fry eggs and steak on the stove"),
    ],
    "kitap": [
        ("classic novel", ("Suç ve Ceza", "Dostoyevski'nin klasik romanı, ciltli baskı"),
         ("Crime and Punishment", "Dostoevsky's classic novel, hardcover edition"),
         "Rus edebiyatından vicdan üzerine ünlü roman",
         "famous Russian story about guilt and conscience"),
        ("programming", ("Temiz Kod", "Yazılım zanaatı, okunabilir kod yazma rehberi"),
         ("Clean Code", "Software craftsmanship, a guide to readable code"),
         "daha iyi yazılım geliştirmek için teknik kaynak",
         "a technical read to become a better software developer"),
        ("cookbook", ("Türk Mutfağı Yemek Kitabı", "Geleneksel tarifler, fotoğraflı anlatım"),
         ("Turkish Cuisine Cookbook", "Traditional recipes, illustrated steps"),
         "ev yemekleri pişirmeyi öğreten tarif rehberi",
         "a recipe guide to learn home cooking"),
        ("children's book", ("Küçük Prens", "Saint-Exupéry, resimli çocuk kitabı"),
         ("The Little Prince", "Saint-Exupéry, illustrated children's book"),
         "çocuğuma okumak için masal",
         "a bedtime tale to read to my kid"),
        ("history", ("Osmanlı Tarihi", "İmparatorluğun kuruluşundan çöküşüne"),
         ("History of the Ottoman Empire", "From the empire's rise to its fall"),
         "geçmiş imparatorluklar hakkında akademik eser",
         "an academic work about past empires"),
        ("poetry", ("Şiir Antolojisi", "Modern Türk şiirinden seçmeler"),
         ("Poetry Anthology", "Selected modern poems"),
         "duygusal dizeler içeren edebi derleme",
         "a literary collection of emotional verses"),
    ],
    "spor": [
        ("yoga mat", ("Yoga Matı", "Kaymaz yüzey, 6 mm kalınlık, taşıma askılı"),
         ("Yoga Mat", "Non-slip surface, 6 mm thick, carrying strap"),
         "esneme egzersizleri için yere serilen minder",
         "something to lie on for stretching exercises"),
        ("dumbbells", ("Dambıl Seti", "Ayarlanabilir 2-24 kg, hızlı değişim"),
         ("Dumbbell Set", "Adjustable 2-24 kg, quick change dial"),
         "evde kas yapmak için ağırlık",
         "weights to build muscle at home"),
        ("bicycle", ("Dağ Bisikleti", "Alüminyum kadro, 21 vites, disk fren"),
         ("Mountain Bike", "Aluminium frame, 21 speeds, disc brakes"),
         "ormanda patika sürüşü için iki tekerlekli araç",
         "two wheeler for riding forest trails"),
        ("tent", ("Kamp Çadırı", "4 kişilik, su geçirmez, kolay kurulum"),
         ("Camping Tent", "4 person, waterproof, easy setup"),
         "doğada geceyi geçirmek için barınak",
         "shelter to spend the night outdoors"),
        ("football", ("Futbol Topu", "Maç topu, 5 numara, dikişli"),
         ("Football", "Match ball, size 5, stitched"),
         "halı sahada oynamak için top",
         "a ball for a soccer game with friends"),
        ("swim goggles", ("Yüzücü Gözlüğü", "Buğu önleyici, UV korumalı"),
         ("Swimming Goggles", "Anti-fog, UV protection"),
         "havuzda gözlerimi korumak için",
         "eye protection for the swimming pool"),
    ],
    "kozmetik": [
        ("sunscreen", ("Güneş Kremi", "SPF 50, suya dayanıklı, yağsız formül"),
         ("Sunscreen", "SPF 50, water resistant, oil-free formula"),
         "tatilde cildimi yanıktan korumak için",
         "to keep my skin from burning on holiday"),
        ("shampoo", ("Şampuan", "Kepeğe karşı, bitkisel özler"),
         ("Shampoo", "Anti-dandruff, herbal extracts"),
         "saç yıkamak için temizleyici",
         "cleanser to wash my hair"),
        ("perfume", ("Parfüm", "Odunsu ve çiçeksi notalar, 100 ml"),
         ("Perfume", "Woody and floral notes, 100 ml"),
         "güzel kokmak için hediye",
         "a fragrance to give as a gift"),
        ("lipstick", ("Ruj", "Mat bitiş, uzun süre kalıcı, kırmızı"),
         ("Lipstick", "Matte finish, long lasting, red"),
         "dudaklar için kırmızı makyaj ürünü",
         "red make-up for the lips"),
        ("moisturizer", ("Nemlendirici Krem", "Hyalüronik asit, kuru ciltler için"),
         ("Moisturising Cream", "Hyaluronic acid, for dry skin"),
         "kuruyan yüz cildi için bakım",
         "face care for skin that feels dry"),
        ("toothpaste", ("Diş Macunu", "Beyazlatıcı, florürlü"),
         ("Toothpaste", "Whitening, with fluoride"),
         "dişlerimi fırçalamak için",
         "for brushing my teeth every day"),
    ],
    "oyuncak": [
        ("lego", ("Yapı Blokları Seti", "1000 parça, şehir teması, 8 yaş üstü"),
         ("Building Blocks Set", "1000 pieces, city theme, ages 8 and up"),
         "çocukların parçaları birleştirerek ev kurduğu oyuncak",
         "a toy where kids snap pieces together to build houses"),
        ("puzzle", ("Yapboz", "1000 parça, manzara resmi"),
         ("Jigsaw Puzzle", "1000 pieces, landscape picture"),
         "parçaları birleştirip resim oluşturulan oyun",
         "a picture game where you fit pieces together"),
        ("doll", ("Oyuncak Bebek", "Giydirilebilir, saç taranabilir"),
         ("Doll", "Dress-up clothes, brushable hair"),
         "kız çocuğu için giydirme oyuncağı",
         "a dress-up toy figure for a little girl"),
        ("rc car", ("Uzaktan Kumandalı Araba", "4x4, şarj edilebilir pil, 20 km/s"),
         ("Remote Control Car", "4x4, rechargeable battery, 20 km/h"),
         "kumanda ile sürülen hızlı oyuncak",
         "a fast toy vehicle you drive with a controller"),
        ("board game", ("Kutu Oyunu", "Aile için strateji oyunu, 2-6 oyuncu"),
         ("Board Game", "Family strategy game, 2-6 players"),
         "akşamları aileyle masada oynanacak eğlence",
         "fun to play around the table with family in the evening"),
        ("plush", ("Peluş Ayı", "Yumuşak, 40 cm, yıkanabilir"),
         ("Teddy Bear", "Soft plush, 40 cm, washable"),
         "bebeğin sarılarak uyuyacağı yumuşak oyuncak",
         "a soft cuddly toy for a baby to sleep with"),
    ],
    "gıda": [
        ("olive oil", ("Zeytinyağı", "Soğuk sıkım, natürel sızma, 1 litre"),
         ("Olive Oil", "Cold pressed, extra virgin, 1 litre"),
         "salataya dökmek için Ege yağı",
         "oil to pour over my salad"),
        ("tea", ("Siyah Çay", "Rize çayı, 1 kg, demlik için"),
         ("Black Tea", "Loose leaf black tea, 1 kg, for the teapot"),
         "kahvaltıda içmek için demlenen içecek",
         "a brewed drink for breakfast"),
        ("honey", ("Çiçek Balı", "Süzme, doğal, 850 g"),
         ("Flower Honey", "Strained, natural, 850 g"),
         "kahvaltıda ekmeğe sürmek için tatlı",
         "something sweet to spread on bread at breakfast"),
        ("coffee beans", ("Kahve Çekirdeği", "Arabica, orta kavrulmuş, 500 g"),
         ("Coffee Beans", "Arabica, medium roast, 500 g"),
         "evde öğütmek için kavrulmuş tane",
         "roasted beans to grind at home"),
        ("pasta", ("Makarna", "Durum buğdayı, spagetti, 500 g"),
         ("Pasta", "Durum wheat, spaghetti, 500 g"),
         "akşam yemeği için kaynatılacak hamur işi",
         "noodles to boil for dinner"),
        ("chocolate", ("Bitter Çikolata", "%70 kakao, 80 g"),
         ("Dark Chocolate", "70% cocoa, 80 g"),
         "tatlı krizi için kakaolu atıştırmalık",
         "a cocoa snack when I crave something sweet"),
    ],
}
BRANDS = [("Anadolu", "Nordic"), ("Boğaziçi", "Atlas")]


def products() -> List[Dict]:
    """The 192 products: each of the 48 types × 2 brands, in Turkish and in English."""
    out = []
    for category, types in TYPES.items():
        for key, (tr_name, tr_desc), (en_name, en_desc), _, _ in types:
            for tr_brand, en_brand in BRANDS:
                for lang, brand, name, desc in (("tr", tr_brand, tr_name, tr_desc),
                                                ("en", en_brand, en_name, en_desc)):
                    pid = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                         f"vectorstream-tr-en/{key}/{lang}/{brand}"))
                    out.append({"id": pid, "name": f"{brand} {name}", "description": desc,
                                "category": category, "price": 100.0, "type": key,
                                "lang": lang})
    return out


def queries() -> List[Dict]:
    """Two queries a type (Turkish, English); the right answers are the type's products."""
    out = []
    for category, types in TYPES.items():
        for key, _, _, tr_query, en_query in types:
            out.append({"text": tr_query, "lang": "tr", "type": key, "category": category})
            out.append({"text": en_query, "lang": "en", "type": key, "category": category})
    return out


def text(product: Dict) -> str:
    """What the pipeline embeds for a product (as `Event.text`)."""
    return f"{product['name']}. {product['description']}"
