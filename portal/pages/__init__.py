"""Pages: the tenant's and self-service pages, their forms, context processors and URL confs."""
