-- Source database DDL: the contract of source-system.md §1.2 (24 tables in schema public)
-- plus the simulator's own clock in schema lakehouse_sim.
--
-- Conventions of the contract: `serial` is an int4 identity, foreign-key columns are BIGINT,
-- money is NUMERIC(p,2), timestamps are TIMESTAMP WITHOUT TIME ZONE holding local time.
-- Relationships marked "no FK" in the contract deliberately have no constraint.
-- No triggers: the trigger behaviour of source-system.md §1.5 is simulated by lakehouse_simulator.advance
-- (correct by default; the real source's misbehaviour behind SourceBehaviour switches).
-- Tables are created in foreign-key-safe order (the same order as schema.SOURCE_TABLES).

-- ---------------------------------------------------------------- small static reference
CREATE TABLE public.category (
    id          serial PRIMARY KEY,
    name        varchar(50),
    description text,
    created_at  timestamp,
    updated_at  timestamp,
    is_active   boolean DEFAULT true
);

CREATE TABLE public.sub_category (
    id          serial PRIMARY KEY,
    name        varchar(50),
    description text,
    category_id bigint REFERENCES public.category (id),
    created_at  timestamp,
    updated_at  timestamp,
    is_active   boolean DEFAULT true
);

CREATE TABLE public.brand (
    id          serial PRIMARY KEY,
    name        varchar(100),
    country     varchar(50),
    description text,
    is_active   boolean DEFAULT true,
    created_at  timestamp,
    updated_at  timestamp
);

CREATE TABLE public.order_channel (
    id          serial PRIMARY KEY,
    name        varchar(50),
    description text,
    created_at  timestamp,
    updated_at  timestamp,
    is_active   boolean DEFAULT true
);

CREATE TABLE public.shipping_method (
    id                      serial PRIMARY KEY,
    name                    varchar(50),
    description             text,
    estimated_delivery_time int,            -- hours
    is_active               boolean DEFAULT true,
    created_at              timestamp,
    updated_at              timestamp
);

CREATE TABLE public.logistics_partner (
    id         serial PRIMARY KEY,
    name       varchar(100),
    created_at timestamp,
    rating     numeric(3,2),
    updated_at timestamp,
    is_active  boolean DEFAULT true
);

-- ---------------------------------------------------------------- large static reference
CREATE TABLE public.geo_location (
    ward_code     bigint PRIMARY KEY,       -- natural key
    ward_name     varchar(50),
    ward_type     varchar(50),
    district_name varchar(50),
    province_name varchar(50),
    created_at    timestamp DEFAULT now(),
    updated_at    timestamp DEFAULT now(),
    is_active     boolean DEFAULT true,
    is_before     boolean DEFAULT false
);

CREATE TABLE public.warehouse (
    id              serial PRIMARY KEY,
    name            varchar(100),
    address         text,
    geo_location_id bigint REFERENCES public.geo_location (ward_code),
    capacity_sqm    numeric(12,2),
    manager         varchar(100),
    contact_phone   varchar(20),
    is_active       boolean DEFAULT true,
    created_at      timestamp DEFAULT now(),
    updated_at      timestamp DEFAULT now()
);

-- ---------------------------------------------------------------- catalogue
CREATE TABLE public.product (
    id              serial PRIMARY KEY,
    product_sku     varchar(50),             -- not unique
    brand_id        bigint REFERENCES public.brand (id),
    name            varchar(100),
    description     text,
    price           numeric(12,2),
    sub_category_id bigint REFERENCES public.sub_category (id),
    created_at      timestamp,
    updated_at      timestamp,
    is_active       boolean DEFAULT true
);

-- ---------------------------------------------------------------- mutable entities
CREATE TABLE public.inventory (
    id              serial PRIMARY KEY,
    product_id      bigint REFERENCES public.product (id),
    warehouse_id    bigint REFERENCES public.warehouse (id),
    quantity        int CHECK (quantity >= 0),
    safety_stock    int DEFAULT 0,
    reorder_level   int DEFAULT 0,
    last_counted_at timestamp,
    unit_cost       numeric(12,2),
    is_active       boolean DEFAULT true,
    created_at      timestamp DEFAULT now(),
    updated_at      timestamp DEFAULT now(),
    UNIQUE (product_id, warehouse_id)
);

CREATE TABLE public.discount (
    id            serial PRIMARY KEY,
    name          varchar(100),
    discount_type varchar(50),               -- '%' or 'fixed'
    value         numeric(12,2),
    start_date    timestamp,
    end_date      timestamp,
    applies_to    varchar(50),               -- product | category | order
    source_system varchar(50),               -- channel name
    is_active     boolean,                   -- no default
    created_at    timestamp,
    updated_at    timestamp
);

CREATE TABLE public.payment (                -- no foreign keys: orders point to payments
    id             serial PRIMARY KEY,
    payment_method varchar(50),
    payment_status varchar(50),
    transaction_id varchar(100),             -- not unique
    amount         numeric(12,2),
    created_at     timestamp,
    updated_at     timestamp,
    is_active      boolean DEFAULT true
);

CREATE TABLE public.customers (
    id               serial PRIMARY KEY,
    customer_code    varchar(50) UNIQUE,
    geo_location_id  bigint REFERENCES public.geo_location (ward_code),
    order_channel_id bigint,                 -- no FK: registration channel
    created_at       timestamp,
    is_active        boolean DEFAULT true,
    name             varchar(100),
    email            varchar(100),
    phone            varchar(20),
    tier             varchar(20) DEFAULT 'Bronze'
                     CHECK (tier IN ('Bronze', 'Silver', 'Gold', 'Platinum')),
    total_spent      numeric(15,2) DEFAULT 0,
    loyalty_points   int DEFAULT 0,
    last_order_date  timestamp,
    updated_at       timestamp
);

CREATE TABLE public.shipment (
    id                   serial PRIMARY KEY,
    logistics_partner_id bigint REFERENCES public.logistics_partner (id),
    warehouse_id         bigint,             -- no FK
    is_expedited         boolean,
    shipping_method_id   bigint,             -- no FK
    tracking_number      varchar(100) UNIQUE,
    shipping_cost        numeric(12,2),
    shipping_status      varchar(50),
    created_at           timestamp,
    updated_at           timestamp,
    is_active            boolean DEFAULT true,
    estimated_delivery   timestamp,
    actual_delivery      timestamp,
    delivery_attempts    int DEFAULT 0
);

CREATE TABLE public.orders (
    id                   serial PRIMARY KEY,
    customer_id          bigint REFERENCES public.customers (id),
    payment_id           bigint REFERENCES public.payment (id),
    shipping_id          bigint REFERENCES public.shipment (id),
    discount_id          bigint REFERENCES public.discount (id),
    location_id          bigint REFERENCES public.geo_location (ward_code),
    logistics_partner_id bigint REFERENCES public.logistics_partner (id),
    order_channel_id     bigint REFERENCES public.order_channel (id),
    order_code           varchar(50) NOT NULL UNIQUE,
    order_date           timestamp,
    status               varchar(50),        -- no CHECK: vocabulary in §1.4
    is_active            boolean DEFAULT true,
    created_at           timestamp,
    updated_at           timestamp,
    total_price          numeric(11,2),
    profit               numeric(12,2),
    notes                text,
    confirmed_at         timestamp,
    delivered_at         timestamp,
    cancelled_at         timestamp,
    cancel_reason        varchar(200)
);

-- ---------------------------------------------------------------- facts around orders
CREATE TABLE public.order_items (            -- no UNIQUE (order_id, product_id)
    id              serial PRIMARY KEY,
    order_id        bigint REFERENCES public.orders (id),
    product_id      bigint REFERENCES public.product (id),
    unit_price      numeric(12,2),
    discount_amount numeric(12,2),
    quantity        int,
    amount          numeric(12,2),
    is_active       boolean,                 -- no default
    created_at      timestamp
);

CREATE TABLE public.order_status_history (
    id         serial PRIMARY KEY,
    order_id   bigint REFERENCES public.orders (id),
    status     varchar(50),
    changed_at timestamp,
    changed_by varchar(100),
    is_active  boolean DEFAULT true
);

CREATE TABLE public.order_return (
    id            serial PRIMARY KEY,
    order_id      bigint NOT NULL REFERENCES public.orders (id),
    customer_id   bigint NOT NULL REFERENCES public.customers (id),
    reason        varchar(200) NOT NULL,
    return_type   varchar(50) NOT NULL CHECK (return_type IN ('refund', 'exchange', 'repair')),
    status        varchar(50) NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'rejected', 'processing', 'completed')),
    refund_amount numeric(12,2) DEFAULT 0,
    is_active     boolean DEFAULT true,
    created_at    timestamp DEFAULT now(),
    updated_at    timestamp DEFAULT now(),
    resolved_at   timestamp
);

CREATE TABLE public.product_review (
    id            serial PRIMARY KEY,
    product_id    bigint REFERENCES public.product (id),
    customer_id   bigint REFERENCES public.customers (id),
    rating        int CHECK (rating >= 1 AND rating <= 5),
    review_text   text,
    source_system varchar(50),               -- channel name
    created_at    timestamp,
    updated_at    timestamp,
    is_active     boolean DEFAULT true
);

-- ---------------------------------------------------------------- carts and wishlists
CREATE TABLE public.cart (
    id             serial PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES public.customers (id),
    channel        varchar(50),              -- channel name, no FK
    status         varchar(20) NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'checked_out', 'abandoned', 'expired')),
    total_amount   numeric(12,2) DEFAULT 0,
    item_count     int DEFAULT 0,
    expires_at     timestamp,
    checked_out_at timestamp,
    order_id       bigint REFERENCES public.orders (id),
    is_active      boolean DEFAULT true,
    created_at     timestamp DEFAULT now(),
    updated_at     timestamp DEFAULT now()
);

CREATE TABLE public.cart_items (
    id              serial PRIMARY KEY,
    cart_id         bigint NOT NULL REFERENCES public.cart (id),
    product_id      bigint NOT NULL REFERENCES public.product (id),
    quantity        int NOT NULL CHECK (quantity > 0),
    unit_price      numeric(12,2) NOT NULL,
    discount_amount numeric(12,2) DEFAULT 0,
    amount          numeric(12,2) NOT NULL,
    added_at        timestamp DEFAULT now(),
    updated_at      timestamp DEFAULT now(),
    is_active       boolean DEFAULT true,
    UNIQUE (cart_id, product_id)
);

CREATE TABLE public.wishlist (
    id          serial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    product_id  bigint NOT NULL REFERENCES public.product (id),
    added_at    timestamp DEFAULT now(),
    is_active   boolean DEFAULT true,
    UNIQUE (customer_id, product_id)
);

-- ---------------------------------------------------------------- append-only logs
CREATE TABLE public.inventory_log (
    id              serial PRIMARY KEY,
    inventory_id    bigint NOT NULL REFERENCES public.inventory (id),
    change_type     varchar(50) NOT NULL
                    CHECK (change_type IN ('sale', 'restock', 'return', 'adjustment', 'damage')),
    quantity_change int NOT NULL,            -- signed delta
    quantity_before int NOT NULL,
    quantity_after  int NOT NULL,
    reference_id    bigint,                  -- no FK: order, purchase order or return
    reference_type  varchar(50)
                    CHECK (reference_type IN ('order', 'purchase_order', 'return', 'manual')),
    note            text,
    changed_by      varchar(100) DEFAULT 'System',
    created_at      timestamp DEFAULT now()
);

CREATE TABLE public.customer_activity_log (
    id            serial PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES public.customers (id),
    activity_type varchar(50) NOT NULL
                  CHECK (activity_type IN ('view', 'search', 'add_to_cart', 'remove_from_cart',
                                           'purchase', 'review', 'wishlist')),
    product_id    bigint REFERENCES public.product (id),
    channel       varchar(50),               -- channel name, free text
    metadata      jsonb,
    created_at    timestamp DEFAULT now()
);

-- ---------------------------------------------------------------- simulator state (not source data)
CREATE SCHEMA lakehouse_sim;

CREATE TABLE lakehouse_sim.clock (
    id      int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    sim_now timestamp NOT NULL
);
