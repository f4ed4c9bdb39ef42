"""Test bootstrap: patch gevent first, exactly as runtime.py does, so actors run on greenlets."""

from gevent import monkey

monkey.patch_all()
