"""SQL templates of the clickhouse exporter (a package so the .sql files ship in wheels)."""
