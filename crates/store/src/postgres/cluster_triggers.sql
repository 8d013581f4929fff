-- Installed by every cluster node when it connects (PostgresStore::open_as_node), under an
-- advisory lock, idempotently; the functions they call are migration 0013's.
CREATE OR REPLACE TRIGGER contacts_inserted AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_rows('contacts');
CREATE OR REPLACE TRIGGER contacts_updated AFTER UPDATE ON contacts
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_rows('contacts');
CREATE OR REPLACE TRIGGER events_inserted AFTER INSERT ON events
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_rows('events');
CREATE OR REPLACE TRIGGER tombstones_inserted AFTER INSERT ON contact_tombstones
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_deleted();
CREATE OR REPLACE TRIGGER fields_inserted AFTER INSERT ON fields
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_definitions();
CREATE OR REPLACE TRIGGER fields_updated AFTER UPDATE ON fields
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_definitions();
CREATE OR REPLACE TRIGGER fields_deleted AFTER DELETE ON fields
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_definitions();
CREATE OR REPLACE TRIGGER segments_inserted AFTER INSERT ON segments
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_definitions();
CREATE OR REPLACE TRIGGER segments_updated AFTER UPDATE ON segments
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_definitions();
CREATE OR REPLACE TRIGGER segments_deleted AFTER DELETE ON segments
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_definitions();
CREATE OR REPLACE TRIGGER membership_changes_checked AFTER INSERT ON membership_changes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_check_owner();
CREATE OR REPLACE TRIGGER campaign_recipients_checked AFTER UPDATE ON campaign_recipients
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION segmentd_check_owner();
