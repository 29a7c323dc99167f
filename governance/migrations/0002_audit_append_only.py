"""On PostgreSQL, refuse UPDATE, DELETE and TRUNCATE of audit events, whatever the client.

Row triggers stop UPDATE and DELETE; a statement trigger stops TRUNCATE, which row triggers
never see. TRUNCATE is let through only in a session that set
`runproof.audit_maintenance = on` (the test suite's flush between transactional tests).
A superuser can still disable the trigger; `verify_audit` and the signed checkpoints catch
what that would allow.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION governance_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('runproof.audit_maintenance', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'governance_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER governance_auditevent_no_update_delete
    BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION governance_audit_append_only();
CREATE TRIGGER governance_auditevent_no_truncate
    BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION governance_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS governance_auditevent_no_truncate ON governance_auditevent;
DROP TRIGGER IF EXISTS governance_auditevent_no_update_delete ON governance_auditevent;
DROP FUNCTION IF EXISTS governance_audit_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_audit_trail")]

    operations = [migrations.RunPython(forward, backward)]
