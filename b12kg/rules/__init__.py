"""The rule base: SHACL-AF node shapes with one SPARQL rule each (``rules/*.ttl``), read once
(``base``), in the normal form the compiled engine and the SWRL translation read (``algebra``),
as SPARQL 1.1 Updates for set-at-a-time stores (``updates``) and as SWRL (``swrl``)."""

from .base import Rule, body_vocabulary, load_rules, rule_support_graph, rules_graph, split_construct
from .updates import set_at_a_time_bodies, set_at_a_time_updates

__all__ = ["Rule", "body_vocabulary", "load_rules", "rule_support_graph", "rules_graph", "split_construct",
           "set_at_a_time_bodies", "set_at_a_time_updates"]
