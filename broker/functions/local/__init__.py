"""The local stand-ins for what AWS does around the functions (function URL, SQS event source
mappings): used by `python -m broker.functions.runner`, never deployed."""
