from tests.knowledge.site import local_site

__all__ = ["local_site"]
