pytest_plugins = ["tests.network_guard", "tests.server", "tests.redis_server", "tests.orthanc"]
