"""Request and response bodies: *Create / *Update for input, *Public for output (never raw documents)."""
