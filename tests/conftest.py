pytest_plugins = ["tests.server", "tests.redis_server", "tests.orthanc"]
