"""The knowledge base: the ontology (parsed once), the vocabulary the inputs read from it, the
tables the outputs read, the release build (``kb.build``) and the QC queries (``kb.qc``)."""

from .ontology import ontology_graph, ontology_ntriples, parse_turtle
from .tables import (age_band_edges, finding_classes, label_table, limit_text, reading_notes, threshold_table,
                     unassessed_notes)
from .vocabulary import LabTestInfo, UnitInfo, Vocabulary, vocabulary

__all__ = ["ontology_graph", "ontology_ntriples", "parse_turtle", "age_band_edges", "finding_classes", "label_table",
           "limit_text", "reading_notes", "unassessed_notes",
           "threshold_table", "LabTestInfo", "UnitInfo", "Vocabulary", "vocabulary"]
