{#- ONNX embeddings of df02 snips whose image the ledger no longer has: gone since it was embedded, unreadable
    (skipped by an --allow-partial ingest), or not in the ledger at all. One row each, naming the snip and why. -#}
{% test image_available(model, column_name, snips, df02) %}

with embedded as (
    select {{ column_name }} as snip_id, experiment_date, model_name from {{ model }} where source = 'onnx'
),

ledger as (
    select snip_id, experiment_date, image_status from {{ snips }}
),

listed as (
    select snip_id, experiment_date from {{ df02 }}
)

select
    embedded.snip_id,
    embedded.experiment_date,
    embedded.model_name,
    coalesce(ledger.image_status, 'not in the ledger') as image_status
from embedded
inner join listed on embedded.snip_id = listed.snip_id and embedded.experiment_date = listed.experiment_date
left join ledger on embedded.snip_id = ledger.snip_id and embedded.experiment_date = ledger.experiment_date
where ledger.snip_id is null or ledger.image_status in ('missing', 'unreadable')

{% endtest %}
