// The demo's sample database: several schemas, a mixed-case table, a name that needs quoting, a
// sequence, a partitioned table, a materialized view, and tables big enough to watch a copy.

/** Schema only: applied to A, B and C (Bucardo replicates rows, not DDL). */
export const SAMPLE_SCHEMA = `
CREATE SCHEMA sales;
CREATE SCHEMA inventory;
CREATE TABLE public."Customers" ("CustomerId" int PRIMARY KEY, "FullName" text NOT NULL, email text);
CREATE TABLE public."order notes" (id bigint PRIMARY KEY, note text);
CREATE SEQUENCE public.invoice_number;
CREATE TABLE sales.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric(12,2), placed_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX orders_customer ON sales.orders (customer_id);
CREATE INDEX orders_placed ON sales.orders (placed_at);
CREATE TABLE sales.order_items (order_id bigint, line int, product_id int, quantity int, PRIMARY KEY (order_id, line));
CREATE TABLE sales.events (id bigint, happened date NOT NULL, kind text, PRIMARY KEY (id, happened)) PARTITION BY RANGE (happened);
CREATE TABLE sales.events_2025 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.events_2026 PARTITION OF sales.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE inventory.products (id int PRIMARY KEY, name text, stock int);
CREATE MATERIALIZED VIEW public.customer_totals AS
  SELECT customer_id, count(*) AS orders, sum(amount) AS total FROM sales.orders GROUP BY customer_id WITH NO DATA;
`;

/** Rows: only on A. */
export function sampleData(orderCount: number): string {
  return `
INSERT INTO public."Customers" SELECT g, 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO public."order notes" SELECT g, 'note ' || g FROM generate_series(1, 100) g;
SELECT setval('public.invoice_number', 4200);
INSERT INTO sales.orders SELECT g, 1 + g % 1000, (g % 500) + 0.99, now() - (g || ' seconds')::interval FROM generate_series(1, ${orderCount}) g;
INSERT INTO sales.order_items SELECT g, l, 1 + (g * l) % 300, l FROM generate_series(1, ${Math.floor(orderCount / 2)}) g, generate_series(1, 2) l;
INSERT INTO sales.events SELECT g, DATE '2025-06-01' + (g % 400), 'kind ' || (g % 7) FROM generate_series(1, 5000) g;
INSERT INTO inventory.products SELECT g, 'Product ' || g, g * 3 FROM generate_series(1, 300) g;
REFRESH MATERIALIZED VIEW public.customer_totals;
ANALYZE;
`;
}
