import factory
from django.contrib.auth import get_user_model

from tenants.models import Membership, Project


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda project: project.slug.replace("-", " ").title())
    kind = Project.Kind.SALES
    language = Project.Language.EN
    bot_token = factory.Sequence(lambda n: f"{7000000000 + n}:TEST-token-{n:04d}-abcdefghijklmnopqrstuvwxyz")
    start_reply = "Hello from the test bot!"
    prompt = "You are a helpful test consultant."


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"operator{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "operator-password")

    @factory.post_generation
    def save_password(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Membership.Role.OPERATOR
