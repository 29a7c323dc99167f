"""Create the five role groups. Names are copied here, not imported: migrations never use app code."""

from django.db import migrations

ROLE_NAMES = ["Model owner", "Risk committee", "Compliance officer", "Auditor", "Administrator"]


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_NAMES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
