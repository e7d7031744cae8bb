-- +goose Up
-- When the agent acknowledged receiving the command (the ack parameter of
-- a later check-in). A command sent but never acknowledged is offered again
-- after the redelivery delay: its check-in answer may never have arrived.
ALTER TABLE commands ADD COLUMN acked_at DATETIME;

-- +goose Down
ALTER TABLE commands DROP COLUMN acked_at;
