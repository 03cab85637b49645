"""RDF: every IRI, namespace and graph name (``terms``), the patient graph writer (``patient``)
and the pyoxigraph helpers the engines and the explanations share (``store``)."""
