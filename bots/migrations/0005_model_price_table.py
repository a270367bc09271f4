"""Load the maintained price table into ModelPrice, so that a fresh install prices the common models."""

from decimal import Decimal

from django.db import migrations

from bots.llm.price_table import PRICE_TABLE


def load_prices(apps, schema_editor):
    ModelPrice = apps.get_model("bots", "ModelPrice")
    existing = set(ModelPrice.objects.values_list("model", flat=True))
    ModelPrice.objects.bulk_create(
        [
            ModelPrice(model=model, input_per_million=Decimal(inp), cached_input_per_million=Decimal(cached),
                       output_per_million=Decimal(out))
            for model, inp, cached, out in PRICE_TABLE
            if model not in existing
        ]
    )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [("bots", "0004_turn_outcome")]

    operations = [migrations.RunPython(load_prices, migrations.RunPython.noop)]
