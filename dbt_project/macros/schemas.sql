{#- GENERATED from morphlake's lake registry (morphlake.lake.schemas) by `python -m morphlake.lake.dbt_files
    --write`: do not edit by hand (CI checks it is current). -#}


{#- df02's required columns as ingest writes them (morphlake.ingest.df02.DF02_SCHEMA); df02 keeps every other column
    of its CSV besides. stg_df02's empty relation. -#}
{% macro df02_columns() %}
  {{ return({
      "snip_id": "varchar",
      "embryo_id": "varchar",
      "experiment_date": "varchar",
      "well": "varchar",
      "time_int": "bigint",
      "Time Rel (s)": "double",
      "predicted_stage_hpf": "double",
      "surface_area_um": "double",
      "short_pert_name": "varchar",
      "phenotype": "varchar",
      "control_flag": "boolean",
      "temperature": "double",
      "medium": "varchar",
      "use_embryo_flag": "boolean"
  }) }}
{% endmacro %}


{#- The training sets' required columns (raw/train). stg_train's empty relation. -#}
{% macro train_columns() %}
  {{ return({
      "snip_id": "varchar",
      "train_name": "varchar"
  }) }}
{% endmacro %}


{#- The snip-image ledger, raw/snips (morphlake.ingest.ledger.LEDGER_SCHEMA). stg_snips' empty relation. -#}
{% macro ledger_columns() %}
  {{ return({
      "snip_id": "varchar",
      "experiment_date": "varchar",
      "path": "varchar",
      "format": "varchar",
      "width": "integer",
      "height": "integer",
      "mode": "varchar",
      "file_size": "bigint",
      "mtime_ns": "bigint",
      "fingerprint": "varchar",
      "image_status": "varchar"
  }) }}
{% endmacro %}


{#- The embeddings' columns before their z columns (morphlake.lake.embeddings_table.META_FIELDS);
    embedding_columns() (macros/z_columns.sql) adds the float z columns. -#}
{% macro embedding_meta_columns() %}
  {{ return({
      "snip_id": "varchar",
      "experiment_date": "varchar",
      "model_name": "varchar",
      "source": "varchar",
      "encoder_weights": "varchar",
      "model_sha256": "varchar",
      "image_fingerprint": "varchar",
      "embed_options": "varchar",
      "z_naming": "varchar",
      "run_id": "varchar"
  }) }}
{% endmacro %}


{#- df03's columns before its z columns: df02's required ones, then the embedding's provenance
    (morphlake.lake.schemas.DF03_PROVENANCE). df03's column contract. -#}
{% macro df03_columns() %}
  {%- set columns = df02_columns() -%}
  {%- do columns.update({
      "model_name": "varchar",
      "embedding_source": "varchar",
      "encoder_weights": "varchar",
      "model_sha256": "varchar",
      "image_fingerprint": "varchar",
      "embed_options": "varchar",
      "embedding_run_id": "varchar"
  }) -%}
  {{ return(columns) }}
{% endmacro %}
