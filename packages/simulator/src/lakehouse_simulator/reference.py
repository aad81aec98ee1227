"""Reference and catalogue tables, synthesised at their natural size (independent of scale).

geo_location (10,035 wards, 63 provinces, 691 districts), category (4), sub_category (8),
brand (29), order_channel (5), shipping_method (4), logistics_partner (10), warehouse (6) and
product (497, ids 1–502 with gaps). All rows are created at the start of the simulated period
(bootstrap), with ``updated_at = created_at``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse_simulator import vocab
from lakehouse_simulator.copyio import Frame
from lakehouse_simulator.sampling import SimClock, first_occurrence, weighted

S = np.dtypes.StringDType()


@dataclass(frozen=True)
class Reference:
    """Reference frames plus the arrays the fact generators sample from (index = id order)."""

    frames: dict[str, Frame]
    channel_names: np.ndarray      # channel id - 1 -> name
    channel_weights: np.ndarray
    ward_codes: np.ndarray
    ward_weights: np.ndarray
    product_ids: np.ndarray
    product_price: np.ndarray      # whole VND
    product_weight: np.ndarray     # relative popularity
    warehouse_ids: np.ndarray
    partner_ids: np.ndarray        # active partners only
    method_ids: np.ndarray
    method_hours: np.ndarray
    method_names: np.ndarray


def _col(values) -> np.ndarray:
    return np.array(list(values), dtype=S)


def _stamps(clock: SimClock, n: int) -> dict[str, np.ndarray]:
    """created_at = updated_at = period start (reference data is bootstrapped then)."""
    return {"created_at": clock.start_of_period(n), "updated_at": clock.start_of_period(n)}


def _ids(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.int64)


def person_names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vietnamese full names and the unaccented (family, given) parts for e-mail addresses."""
    fam = weighted(rng, n, np.array(vocab.FAMILY_WEIGHTS))
    mid = rng.integers(0, len(vocab.MIDDLE_NAMES), n)
    giv = rng.integers(0, len(vocab.GIVEN_NAMES), n)
    fam_v, fam_a = (_col(x) for x in zip(*vocab.FAMILY_NAMES))
    giv_v, giv_a = (_col(x) for x in zip(*vocab.GIVEN_NAMES))
    names = np.strings.add(np.strings.add(np.strings.add(fam_v[fam], " "),
                                          np.strings.add(_col(vocab.MIDDLE_NAMES)[mid], " ")), giv_v[giv])
    return names, fam_a[fam], giv_a[giv]


def phone_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mobile numbers ``09`` + 8 digits."""
    return np.strings.add("09", np.strings.zfill(rng.integers(0, 100_000_000, n).astype(S), 8))


def _place_names(rng: np.random.Generator, prefix: np.ndarray) -> np.ndarray:
    syl = _col(vocab.PLACE_SYLLABLES)
    a = syl[rng.integers(0, len(syl), len(prefix))]
    b = syl[rng.integers(0, len(syl), len(prefix))]
    return np.strings.add(np.strings.add(prefix, " "), np.strings.add(np.strings.add(a, " "), b))


# ----------------------------------------------------------------------------- geography
def _district_kinds(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Province index and kind of each of the 691 districts, grouped by province."""
    n_prov = len(vocab.PROVINCES)
    central = np.arange(5)                      # the five centrally governed cities come first
    provincial = np.arange(5, n_prov)
    counts = {kind: np.zeros(n_prov, dtype=np.int64) for kind, _ in vocab.DISTRICT_KINDS}
    counts["Quận"][central] = (19, 12, 7, 6, 5)
    even = np.full(len(provincial), 1 / len(provincial))
    counts["Thành phố"][provincial] = 1 + rng.multinomial(84 - len(provincial), even)   # one provincial city each
    counts["Thị xã"][provincial] = rng.multinomial(53, even)
    w = np.where(np.arange(n_prov) < 5, 0.5, 1.0)
    counts["Huyện"] = rng.multinomial(505, w / w.sum())
    prov, kind = [], []
    for p in range(n_prov):
        for k, _ in vocab.DISTRICT_KINDS:
            prov += [p] * int(counts[k][p])
            kind += [k] * int(counts[k][p])
    return np.array(prov), _col(kind)


def _geo(rng: np.random.Generator, clock: SimClock) -> Frame:
    d_prov, d_kind = _district_kinds(rng)
    d_name = _place_names(rng, d_kind)
    while not (unique := first_occurrence(d_prov, d_name)).all():   # names are unique within a province
        d_name[~unique] = _place_names(rng, d_kind[~unique])
    n_d = len(d_prov)
    size_w = np.where(d_kind == "Huyện", 1.3, 1.0) * rng.lognormal(0, 0.35, n_d)
    sizes = 1 + rng.multinomial(vocab.N_WARDS - n_d, size_w / size_w.sum())
    w_dist = np.repeat(np.arange(n_d), sizes)
    pos = np.arange(vocab.N_WARDS) - np.repeat(np.cumsum(sizes) - sizes, sizes)   # index within district
    kind = d_kind[w_dist]
    urban_share = rng.random(vocab.N_WARDS) < 0.6
    ward_type = np.where(kind == "Quận", "Phường",
                np.where(kind == "Huyện", np.where(pos == 0, "Thị trấn", "Xã"),
                np.where(urban_share, "Phường", "Xã"))).astype(S)
    codes = np.cumsum(rng.integers(1, 5, vocab.N_WARDS)).astype(np.int64)
    return {
        "ward_code": codes,
        "ward_name": _place_names(rng, ward_type),
        "ward_type": ward_type,
        "district_name": d_name[w_dist],
        "province_name": _col(vocab.PROVINCES)[d_prov[w_dist]],
        **_stamps(clock, vocab.N_WARDS),
        "is_active": np.ones(vocab.N_WARDS, dtype=bool),
        "is_before": np.zeros(vocab.N_WARDS, dtype=bool),
    }


def _ward_weights(geo: Frame) -> np.ndarray:
    """Where customers live: proportional to province popularity, spread over its wards."""
    index = {p: i for i, p in enumerate(vocab.PROVINCES)}
    prov = np.array([index[p] for p in geo["province_name"].tolist()])
    pop = np.array([vocab.PROVINCE_POPULARITY.get(p, 1.0) for p in vocab.PROVINCES])
    per_prov = np.bincount(prov, minlength=len(vocab.PROVINCES))
    return (pop / per_prov)[prov]


# ----------------------------------------------------------------------------- small tables
def _simple_tables(clock: SimClock) -> dict[str, Frame]:
    """category, sub_category, brand, order_channel, shipping_method, logistics_partner."""
    def table(rows: dict[str, list], n: int, active: list[bool] | None = None) -> Frame:
        frame: dict[str, np.ndarray] = {"id": _ids(n)}
        for name, values in rows.items():
            frame[name] = np.array(values, dtype=np.int64) if isinstance(values[0], int) else _col(values)
        is_active = np.array(active if active is not None else [True] * n)
        return {**frame, **_stamps(clock, n), "is_active": is_active}

    cats, subs, brands = vocab.CATEGORIES, vocab.SUB_CATEGORIES, vocab.BRANDS
    partners = vocab.LOGISTICS_PARTNERS
    return {
        "category": table({"name": [c[0] for c in cats], "description": [c[1] for c in cats]}, len(cats)),
        "sub_category": table({"name": [s["name"] for s in subs], "description": [s["description"] for s in subs],
                               "category_id": [s["category"] for s in subs]}, len(subs)),
        "brand": table({"name": [b[0] for b in brands], "country": [b[1] for b in brands],
                        "description": [f"{b[0]} ({b[1]})" for b in brands]}, len(brands)),
        "order_channel": table({"name": [c[0] for c in vocab.ORDER_CHANNELS],
                                "description": [c[1] for c in vocab.ORDER_CHANNELS]}, len(vocab.ORDER_CHANNELS)),
        "shipping_method": table({"name": [m[0] for m in vocab.SHIPPING_METHODS],
                                  "description": [m[1] for m in vocab.SHIPPING_METHODS],
                                  "estimated_delivery_time": [m[2] for m in vocab.SHIPPING_METHODS]},
                                 len(vocab.SHIPPING_METHODS)),
        "logistics_partner": table({"name": [p[0] for p in partners], "rating": [p[1] for p in partners]},
                                   len(partners), active=[p[2] for p in partners]),
    }


def _warehouses(rng: np.random.Generator, clock: SimClock, geo: Frame) -> Frame:
    n = len(vocab.WAREHOUSE_PROVINCES)
    wards = []
    for province in vocab.WAREHOUSE_PROVINCES:
        candidates = np.flatnonzero((geo["province_name"] == province) & (geo["ward_type"] == "Phường"))
        wards.append(candidates[rng.integers(0, len(candidates))])
    wards = np.array(wards)
    street = _col(vocab.STREET_WORDS)[rng.integers(0, len(vocab.STREET_WORDS), n)]
    number = rng.integers(1, 400, n).astype(S)
    address = np.strings.add(np.strings.add("Số ", number), np.strings.add(" ", street))
    for part in ("ward_name", "district_name", "province_name"):
        address = np.strings.add(np.strings.add(address, ", "), geo[part][wards])
    capacity_cents = rng.integers(37_000, 80_100, n)
    managers, _, _ = person_names(rng, n)
    return {
        "id": _ids(n),
        "name": np.strings.add("Kho ", _col(vocab.WAREHOUSE_PROVINCES)),
        "address": address,
        "geo_location_id": geo["ward_code"][wards],
        "capacity_sqm": _col(f"{c // 100}.{c % 100:02d}" for c in capacity_cents),
        "manager": managers,
        "contact_phone": phone_numbers(rng, n),
        "is_active": np.ones(n, dtype=bool),
        **_stamps(clock, n),
    }


# ----------------------------------------------------------------------------- catalogue
def _retail_price(raw: np.ndarray) -> np.ndarray:
    """Shop-style prices: 17,490,000 / 349,000 (never zero)."""
    step = np.where(raw >= 2_000_000, 100_000, 10_000)
    return (np.ceil(raw / step) * step - step // 10).astype(np.int64)


def _products(rng: np.random.Generator, clock: SimClock) -> tuple[Frame, np.ndarray]:
    """The product frame and each product's popularity weight."""
    holes = set(vocab.PRODUCT_ID_HOLES)
    ids = np.array([i for i in range(1, 503) if i not in holes], dtype=np.int64)
    per_subcat = [spec["count"] for spec in vocab.SUB_CATEGORIES]
    subcat = rng.permutation(np.repeat(np.arange(len(vocab.SUB_CATEGORIES)), per_subcat))
    brand_ids = {name: i + 1 for i, (name, _) in enumerate(vocab.BRANDS)}
    brand, names, prices = [], [], []
    for sc in subcat:
        spec = vocab.SUB_CATEGORIES[sc]
        brand_name = list(spec["lines"])[rng.integers(0, len(spec["lines"]))]
        lines = spec["lines"][brand_name]
        line = lines[rng.integers(0, len(lines))]
        variant = spec["variants"][rng.integers(0, len(spec["variants"]))]
        model = "" if spec["name"] == "iPhone" else str(rng.integers(1, 99))
        joiner = "" if len(line.split()[-1]) <= 2 else " "
        names.append(f"{brand_name} {line}{joiner + model if model else ''} {variant}")
        lo, hi = spec["price"]
        prices.append(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        brand.append(brand_ids[brand_name])
    price = _retail_price(np.array(prices))
    brand_arr = np.array(brand, dtype=np.int64)
    sku = _col(f"{vocab.BRANDS[b - 1][0][:3].upper()}-{sc + 1}-{i:04d}" for b, sc, i in zip(brand, subcat, ids))
    name = _col(names)
    frame = {
        "id": ids,
        "product_sku": sku,
        "brand_id": brand_arr,
        "name": name,
        "description": np.strings.add(name, " - hàng chính hãng, bảo hành 12 tháng"),
        "price": price,
        "sub_category_id": subcat.astype(np.int64) + 1,
        **_stamps(clock, len(ids)),
        "is_active": np.ones(len(ids), dtype=bool),
    }
    # Cheaper items sell more often; a per-product factor makes some models best-sellers.
    weight = (price / 1e6) ** -0.9 * rng.lognormal(0.0, 0.7, len(ids))
    return frame, weight


def build_reference(rng: np.random.Generator, clock: SimClock) -> Reference:
    """Synthesise every reference and catalogue table."""
    geo = _geo(rng, clock)
    frames = _simple_tables(clock)
    frames["geo_location"] = geo
    frames["warehouse"] = _warehouses(rng, clock, geo)
    frames["product"], product_weight = _products(rng, clock)
    partner = frames["logistics_partner"]
    method = frames["shipping_method"]
    return Reference(
        frames=frames,
        channel_names=frames["order_channel"]["name"],
        channel_weights=np.array([c[2] for c in vocab.ORDER_CHANNELS]),
        ward_codes=geo["ward_code"],
        ward_weights=_ward_weights(geo),
        product_ids=frames["product"]["id"],
        product_price=frames["product"]["price"],
        product_weight=product_weight,
        warehouse_ids=frames["warehouse"]["id"],
        partner_ids=partner["id"][partner["is_active"]],
        method_ids=method["id"],
        method_hours=method["estimated_delivery_time"],
        method_names=method["name"],
    )
