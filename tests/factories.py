"""factory_boy factories for the inventory and its people."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from factory.django import DjangoModelFactory

from inventory import models as m

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get_or_create(name=str(extracted))[0])

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        # The hashed password is set by a post-generation hook: store it, with or without a role.
        if create:
            instance.save()

    @factory.post_generation
    def teams(self, create, extracted, **kwargs):
        if create and extracted:
            for team in extracted:
                team.members.add(self)


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = m.Team
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class AIModelFactory(DjangoModelFactory):
    class Meta:
        model = m.AIModel

    name = factory.Sequence(lambda n: f"model-{n}")
    kind = m.AIModel.Kind.CLASSIFIER
    provider = "internal"
    lifecycle = m.AIModel.Lifecycle.ACTIVE
    team = factory.SubFactory(TeamFactory)


class ModelVersionFactory(DjangoModelFactory):
    class Meta:
        model = m.ModelVersion

    model = factory.SubFactory(AIModelFactory)
    version = factory.Sequence(lambda n: f"{n}.0")
    approval = m.ModelVersion.Approval.APPROVED
    artifact_uri = factory.LazyAttribute(
        lambda o: f"s3://models/{o.model.name}/{o.version}"
    )


class SystemFactory(DjangoModelFactory):
    class Meta:
        model = m.System

    name = factory.Sequence(lambda n: f"system-{n}")
    kind = m.System.Kind.APPLICATION
    team = factory.SubFactory(TeamFactory)


class DeploymentFactory(DjangoModelFactory):
    class Meta:
        model = m.Deployment

    name = factory.Sequence(lambda n: f"deployment-{n}")
    model = factory.SubFactory(AIModelFactory)
    team = factory.SelfAttribute("model.team")
    environment = m.Deployment.Environment.PRODUCTION
    endpoint = factory.LazyAttribute(lambda o: f"https://{o.name}.internal/v1/predict")


class IdentityFactory(DjangoModelFactory):
    class Meta:
        model = m.NonHumanIdentity
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"svc-{n}")
    kind = m.NonHumanIdentity.Kind.SERVICE_ACCOUNT
    provider = "aws"
    team = factory.SubFactory(TeamFactory)
    issued_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=30))

    @factory.post_generation
    def deployments(self, create, extracted, **kwargs):
        if create and extracted:
            self.deployments.set(extracted)
