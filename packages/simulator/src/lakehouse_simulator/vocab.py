"""Static vocabularies: place and person names, catalogue lines, status and reason lists.

Everything here is a literal; randomness lives in the generators. The names are synthetic or
generic (real province names, invented districts, wards and people).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- geography
PROVINCES: tuple[str, ...] = (
    "Hà Nội", "Hồ Chí Minh", "Hải Phòng", "Đà Nẵng", "Cần Thơ",
    "An Giang", "Bà Rịa - Vũng Tàu", "Bắc Giang", "Bắc Kạn", "Bạc Liêu", "Bắc Ninh", "Bến Tre",
    "Bình Định", "Bình Dương", "Bình Phước", "Bình Thuận", "Cà Mau", "Cao Bằng", "Đắk Lắk",
    "Đắk Nông", "Điện Biên", "Đồng Nai", "Đồng Tháp", "Gia Lai", "Hà Giang", "Hà Nam", "Hà Tĩnh",
    "Hải Dương", "Hậu Giang", "Hòa Bình", "Hưng Yên", "Khánh Hòa", "Kiên Giang", "Kon Tum",
    "Lai Châu", "Lâm Đồng", "Lạng Sơn", "Lào Cai", "Long An", "Nam Định", "Nghệ An", "Ninh Bình",
    "Ninh Thuận", "Phú Thọ", "Phú Yên", "Quảng Bình", "Quảng Nam", "Quảng Ngãi", "Quảng Ninh",
    "Quảng Trị", "Sóc Trăng", "Sơn La", "Tây Ninh", "Thái Bình", "Thái Nguyên", "Thanh Hóa",
    "Thừa Thiên Huế", "Tiền Giang", "Trà Vinh", "Tuyên Quang", "Vĩnh Long", "Vĩnh Phúc", "Yên Bái",
)
#: Share of customers per province relative to an average province (big cities dominate).
PROVINCE_POPULARITY: dict[str, float] = {
    "Hồ Chí Minh": 14.0, "Hà Nội": 11.0, "Hải Phòng": 2.5, "Đà Nẵng": 2.5, "Cần Thơ": 2.0,
    "Bình Dương": 2.5, "Đồng Nai": 2.2, "Khánh Hòa": 1.5, "Quảng Ninh": 1.5, "Bắc Ninh": 1.5,
}
PLACE_SYLLABLES: tuple[str, ...] = (
    "An", "Bình", "Hòa", "Phú", "Tân", "Thạnh", "Long", "Phước", "Hưng", "Thái", "Sơn", "Hải",
    "Đông", "Tây", "Nam", "Bắc", "Trung", "Vĩnh", "Xuân", "Mỹ", "Thuận", "Lộc", "Thành", "Quang",
    "Hiệp", "Định", "Khánh", "Lợi", "Ninh", "Cẩm", "Đức", "Hương", "Lạc", "Yên", "Kim", "Phong",
    "Thượng", "Minh", "Tiến", "Nghĩa", "Tường", "Gia", "Châu", "Lâm", "Lập", "Đại", "Trường", "Thắng",
)
#: District kinds and how many of the 691 districts have each kind.
DISTRICT_KINDS: tuple[tuple[str, int], ...] = (("Quận", 49), ("Thành phố", 84), ("Thị xã", 53), ("Huyện", 505))
N_WARDS = 10_035
STREET_WORDS: tuple[str, ...] = ("Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt",
                                 "Điện Biên Phủ", "Cách Mạng Tháng Tám", "Quang Trung", "Hùng Vương")

# --------------------------------------------------------------------------- people
FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("Nguyễn", "nguyen"), ("Trần", "tran"), ("Lê", "le"), ("Phạm", "pham"), ("Hoàng", "hoang"),
    ("Huỳnh", "huynh"), ("Phan", "phan"), ("Vũ", "vu"), ("Võ", "vo"), ("Đặng", "dang"), ("Bùi", "bui"),
    ("Đỗ", "do"), ("Hồ", "ho"), ("Ngô", "ngo"), ("Dương", "duong"), ("Lý", "ly"),
)
FAMILY_WEIGHTS: tuple[float, ...] = (38, 11, 9.5, 7, 5, 5, 4.5, 4, 4, 2, 2, 1.5, 1.5, 1.3, 1, 0.5)
MIDDLE_NAMES: tuple[str, ...] = ("Văn", "Thị", "Minh", "Ngọc", "Thanh", "Đức", "Hữu", "Quốc", "Gia", "Bảo",
                                 "Thu", "Hoài", "Anh", "Xuân", "Kim")
GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("An", "an"), ("Bình", "binh"), ("Châu", "chau"), ("Dũng", "dung"), ("Giang", "giang"), ("Hà", "ha"),
    ("Hải", "hai"), ("Hạnh", "hanh"), ("Hiếu", "hieu"), ("Hoa", "hoa"), ("Hùng", "hung"), ("Hương", "huong"),
    ("Khánh", "khanh"), ("Lan", "lan"), ("Linh", "linh"), ("Long", "long"), ("Mai", "mai"), ("Minh", "minh"),
    ("Nam", "nam"), ("Ngọc", "ngoc"), ("Nhung", "nhung"), ("Phong", "phong"), ("Phúc", "phuc"),
    ("Quân", "quan"), ("Quang", "quang"), ("Sơn", "son"), ("Tâm", "tam"), ("Thảo", "thao"), ("Thắng", "thang"),
    ("Trang", "trang"), ("Trung", "trung"), ("Tuấn", "tuan"), ("Vy", "vy"), ("Yến", "yen"),
)
#: Webmail-looking domains under the reserved example.com (synthetic PII must never be deliverable).
EMAIL_DOMAINS: tuple[str, ...] = ("gmail.example.com", "yahoo.example.com", "outlook.example.com",
                                  "hotmail.example.com")
EMAIL_DOMAIN_WEIGHTS: tuple[float, ...] = (0.6, 0.2, 0.12, 0.08)

# --------------------------------------------------------------------------- shop reference tables
ORDER_CHANNELS: tuple[tuple[str, str, float], ...] = (  # name, description, share of traffic
    ("Shopee", "Gian hàng chính hãng trên Shopee", 0.35),
    ("Lazada", "LazMall flagship store", 0.20),
    ("Tiki", "Tiki Trading official store", 0.10),
    ("Website", "Cửa hàng trực tuyến của công ty", 0.20),
    ("TikTok", "TikTok Shop livestream store", 0.15),
)
SHIPPING_METHODS: tuple[tuple[str, str, int], ...] = (  # name, description, estimated hours
    ("Standard", "Giao hàng tiêu chuẩn", 120),
    ("Express", "Giao hàng nhanh", 48),
    ("Same-day", "Giao trong ngày (nội thành)", 8),
    ("COD", "Giao hàng thu tiền hộ", 72),
)
LOGISTICS_PARTNERS: tuple[tuple[str, str, bool], ...] = (  # name, rating, active
    ("Giao Hàng Nhanh", "4.45", True), ("Giao Hàng Tiết Kiệm", "4.30", True), ("Viettel Post", "4.10", True),
    ("VNPost", "3.70", True), ("J&T Express", "4.05", True), ("Ninja Van", "3.95", True),
    ("Best Express", "3.80", False), ("Ahamove", "4.60", True), ("GrabExpress", "4.50", True),
    ("SPX Express", "4.20", True),
)
WAREHOUSE_PROVINCES: tuple[str, ...] = ("Hà Nội", "Hồ Chí Minh", "Đà Nẵng", "Hải Phòng", "Cần Thơ", "Bình Dương")

CATEGORIES: tuple[tuple[str, str], ...] = (
    ("Phones", "Điện thoại di động"),
    ("Laptops", "Máy tính xách tay"),
    ("Tech Accessories", "Phụ kiện công nghệ"),
    ("Smart Devices", "Thiết bị thông minh"),
)


# Sub-categories: name, description, category id, product count, price range (VND),
# product lines per brand, variants. Product counts sum to 497.
SUB_CATEGORIES: tuple[dict, ...] = (
    dict(name="Android Phones", description="Điện thoại Android", category=1, count=110,
         price=(2_500_000, 33_000_000),
         lines={"Samsung": ("Galaxy A", "Galaxy S", "Galaxy Z Flip"), "Xiaomi": ("Redmi Note", "Xiaomi"),
                "OPPO": ("Reno", "A", "Find X"), "vivo": ("V", "Y"), "realme": ("C", "GT"), "Nokia": ("G",),
                "Huawei": ("nova", "Mate"), "Honor": ("X", "Magic"), "Tecno": ("Spark", "Camon")},
         variants=("4GB/64GB", "6GB/128GB", "8GB/128GB", "8GB/256GB", "12GB/256GB", "12GB/512GB")),
    dict(name="iPhone", description="Điện thoại iPhone", category=1, count=40, price=(11_000_000, 44_000_000),
         lines={"Apple": ("iPhone 12", "iPhone 13", "iPhone 14", "iPhone 15", "iPhone 15 Pro", "iPhone 15 Pro Max")},
         variants=("128GB", "256GB", "512GB", "1TB")),
    dict(name="Office Laptops", description="Laptop văn phòng", category=2, count=120,
         price=(9_000_000, 45_000_000),
         lines={"Dell": ("Inspiron", "Vostro", "Latitude"), "HP": ("Pavilion", "ProBook"),
                "Lenovo": ("IdeaPad", "ThinkPad", "ThinkBook"), "Asus": ("Vivobook", "Zenbook"),
                "Acer": ("Aspire", "Swift"), "Apple": ("MacBook Air", "MacBook Pro"), "Microsoft": ("Surface Laptop",),
                "LG": ("gram",), "Huawei": ("MateBook",)},
         variants=("i3/8GB/256GB", "i5/8GB/512GB", "i5/16GB/512GB", "i7/16GB/512GB", "R5/16GB/512GB",
                   "M2/8GB/256GB")),
    dict(name="Gaming Laptops", description="Laptop gaming", category=2, count=100,
         price=(18_000_000, 95_000_000),
         lines={"Asus": ("ROG Strix", "TUF Gaming"), "MSI": ("Katana", "Raider", "Cyborg"),
                "Acer": ("Nitro", "Predator Helios"), "Lenovo": ("Legion", "LOQ"), "Dell": ("Alienware", "G15"),
                "HP": ("Victus", "Omen"), "Gigabyte": ("G5", "Aorus"), "Razer": ("Blade",)},
         variants=("i5/16GB/512GB RTX 4050", "i7/16GB/1TB RTX 4060", "R7/16GB/1TB RTX 4060",
                   "i9/32GB/1TB RTX 4080")),
    dict(name="Headsets", description="Tai nghe", category=3, count=50, price=(300_000, 9_000_000),
         lines={"Sony": ("WH-1000XM", "WF-C"), "JBL": ("Tune", "Live"), "Logitech": ("G Pro X", "Zone"),
                "Razer": ("BlackShark", "Kraken"), "Corsair": ("HS", "Virtuoso"), "SteelSeries": ("Arctis",),
                "HyperX": ("Cloud",), "Apple": ("AirPods",), "Samsung": ("Galaxy Buds",)},
         variants=("Đen", "Trắng", "Xanh", "Wireless", "Bluetooth")),
    dict(name="Mice", description="Chuột máy tính", category=3, count=35, price=(150_000, 3_500_000),
         lines={"Logitech": ("MX Master", "G", "M"), "Razer": ("DeathAdder", "Basilisk", "Viper"),
                "Corsair": ("Harpoon", "Katar"), "SteelSeries": ("Rival", "Aerox"), "HyperX": ("Pulsefire",),
                "Microsoft": ("Arc Mouse", "Bluetooth Mouse")},
         variants=("Đen", "Trắng", "Wireless", "Lightspeed")),
    dict(name="Smartwatches", description="Đồng hồ thông minh", category=4, count=27,
         price=(1_000_000, 22_000_000),
         lines={"Apple": ("Watch Series", "Watch Ultra"), "Samsung": ("Galaxy Watch",),
                "Garmin": ("Forerunner", "Venu"), "Amazfit": ("GTR", "GTS"), "Xiaomi": ("Redmi Watch",),
                "Huawei": ("Watch GT",)},
         variants=("41mm", "44mm", "45mm", "GPS", "LTE")),
    dict(name="Smart Home", description="Nhà thông minh", category=4, count=15, price=(300_000, 6_000_000),
         lines={"Xiaomi": ("Camera", "Robot hút bụi"), "TP-Link": ("Tapo Camera", "Tapo Ổ cắm"),
                "Samsung": ("SmartThings Hub",), "LG": ("ThinQ Lọc không khí",), "Huawei": ("Router AX",)},
         variants=("Wi-Fi", "2K", "Gen 2", "Pro")),
)
BRANDS: tuple[tuple[str, str], ...] = (  # name, country
    ("Apple", "United States"), ("Samsung", "South Korea"), ("Xiaomi", "China"), ("OPPO", "China"),
    ("vivo", "China"), ("realme", "China"), ("Nokia", "Finland"), ("Huawei", "China"), ("Honor", "China"),
    ("Tecno", "China"), ("Dell", "United States"), ("HP", "United States"), ("Lenovo", "China"),
    ("Asus", "Taiwan"), ("Acer", "Taiwan"), ("Microsoft", "United States"), ("LG", "South Korea"),
    ("MSI", "Taiwan"), ("Gigabyte", "Taiwan"), ("Razer", "Singapore"), ("Sony", "Japan"),
    ("JBL", "United States"), ("Logitech", "Switzerland"), ("Corsair", "United States"),
    ("SteelSeries", "Denmark"), ("HyperX", "United States"), ("Garmin", "United States"),
    ("Amazfit", "China"), ("TP-Link", "China"),
)
#: Product ids run 1..502 with these five holes (497 products), as in the bootstrap catalogue.
PRODUCT_ID_HOLES: tuple[int, ...] = (57, 133, 274, 391, 466)

# --------------------------------------------------------------------------- order life cycle
ORDER_STATUSES: tuple[str, ...] = (
    "Pending", "Confirmed", "Processing", "Packed", "Shipped", "Delivering", "Delivered", "DeliveryFailed",
    "Completed", "Cancelled", "Returned",
)
#: Payment methods: the generated spellings, then the bootstrap spellings (a small share).
PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("MoMo", 0.20), ("ZaloPay", 0.12), ("VNPay", 0.12), ("Credit Card", 0.15), ("COD", 0.26),
    ("Bank Transfer", 0.10), ("Momo", 0.025), ("Cash on Delivery", 0.025),
)
CASH_ON_DELIVERY: tuple[str, ...] = ("COD", "Cash on Delivery")
CANCEL_REASONS: tuple[str, ...] = (
    "Khách hàng đổi ý", "Đặt nhầm sản phẩm", "Tìm được giá tốt hơn", "Thời gian giao hàng quá lâu",
    "Không liên hệ được khách hàng",
)
#: Cancellations the simulator decides itself (day-by-day advance): no stock left at the shipping
#: warehouse, and the payment or risk check failing (fraud).
STOCKOUT_REASON = "Hết hàng"
FRAUD_REASONS: tuple[str, ...] = ("Thanh toán thất bại", "Nghi ngờ gian lận")
ORDER_NOTES: tuple[str, ...] = ("Giao giờ hành chính", "Gọi trước khi giao", "Giao cuối tuần",
                                "Xuất hóa đơn công ty", "Gói quà giúp")
RETURN_REASONS: tuple[str, ...] = (
    "Sản phẩm bị lỗi", "Giao sai sản phẩm", "Sản phẩm không đúng mô tả", "Hàng bị hư hỏng khi vận chuyển",
    "Không còn nhu cầu", "Thiếu phụ kiện", "Kích thước/màu sắc không phù hợp",
)
REVIEW_TEXTS: dict[int, tuple[str, ...]] = {
    1: ("Rất thất vọng, sản phẩm lỗi.", "Không đáng tiền."),
    2: ("Chất lượng kém hơn mong đợi.", "Giao hàng chậm, đóng gói sơ sài."),
    3: ("Tạm ổn so với giá.", "Bình thường, không có gì nổi bật."),
    4: ("Sản phẩm tốt, giao hàng nhanh.", "Hài lòng, sẽ ủng hộ tiếp."),
    5: ("Tuyệt vời, rất đáng tiền!", "Hàng chính hãng, đóng gói cẩn thận, 10 điểm."),
}
SEARCH_KEYWORDS: tuple[str, ...] = ("iphone 15", "samsung galaxy", "laptop gaming", "tai nghe bluetooth",
                                    "chuột không dây", "macbook air", "đồng hồ thông minh", "camera wifi",
                                    "laptop văn phòng", "xiaomi redmi")
VIEW_SOURCES: tuple[str, ...] = ("direct", "search", "recommendation", "ad")
DISCOUNT_CAMPAIGNS: tuple[str, ...] = ("Flash Sale", "Mega Sale", "Payday", "Sinh nhật", "Back to School",
                                       "Tết Sale", "Double Day", "Livestream Deal")
