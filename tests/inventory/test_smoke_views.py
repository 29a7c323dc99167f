from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import DeploymentFactory, IdentityFactory, ModelVersionFactory


@pytest.mark.django_db
def test_every_list_and_detail_renders_for_admin(login, admin_user):
    version = ModelVersionFactory()
    dep = DeploymentFactory(
        model=version.model, observed_version=version, approved_version=version
    )
    ident = IdentityFactory(deployments=[dep])
    client = login(admin_user)
    for key in ["team", "aimodel", "modelversion", "system", "deployment", "identity"]:
        r = client.get(reverse(f"inventory:{key}_list"))
        assert r.status_code == 200, key
        r = client.get(reverse(f"inventory:{key}_create"))
        assert r.status_code == 200, key
    for url in [
        dep.get_absolute_url(),
        ident.get_absolute_url(),
        version.get_absolute_url(),
        version.model.get_absolute_url(),
        dep.team.get_absolute_url(),
    ]:
        assert client.get(url).status_code == 200, url
