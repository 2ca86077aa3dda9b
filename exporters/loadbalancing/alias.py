"""`load_balancing`: the contrib's newer name of the loadbalancing exporter."""

from __future__ import annotations

import dataclasses

from exporters.loadbalancing import factory as _loadbalancing

factory = dataclasses.replace(_loadbalancing, type="load_balancing")
