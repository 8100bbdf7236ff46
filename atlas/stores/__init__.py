"""What atlas keeps beyond a request: one protocol per role (deliveries, jobs, pulls, plans, drift, audit, locks).

Each role is implemented by the embedded backend (`atlas.stores.sqlite`, files under the data dir)
and by the shared one (`atlas.stores.redis`); plans can also live in S3 (`atlas.stores.s3`).
"""
