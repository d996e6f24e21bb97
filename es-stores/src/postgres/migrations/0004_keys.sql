-- Erasure by crypto-shredding: one key per subject, in a table of its own (apart from the
-- events), and the record of every erasure (who, when, which subject). `forget` deletes the
-- key and inserts the record in one transaction.
CREATE TABLE {schema}.subject_keys (
    subject    text        PRIMARY KEY,
    key_id     text        NOT NULL,
    key        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.erasures (
    id          bigserial   PRIMARY KEY,
    subject     text        NOT NULL,
    erased_by   text        NOT NULL,
    erased_at   timestamptz NOT NULL,
    key_deleted boolean     NOT NULL
);
