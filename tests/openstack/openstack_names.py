"""The names and sizes the OpenStack fixture creates and the programs it
runs, shared by its parts (openstack_fixture.py, openstack_configs.py,
openstack_services.py, openstack_admin.py) and the tests."""


PYTHON = "/usr/bin/python3"
REGION = "RegionOne"
ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = ADMIN_PASSWORD  # the services authenticate as admin
PROJECT = "buildyard"
USER = "buildyard-latent"
ROLE = "buildyard-latent"
NETWORK = "by-net"
IMAGE = "by-image"
SMALL = "by.small"
HUGE = "by.huge"
COMPUTE_HOST = "buildyard-compute"
NOVA_MICROVERSION = "2.79"

# The packages the fixture runs (what .ci/install-deps installs for it).
PROGRAMS = ["keystone-manage", "glance-manage", "nova-manage", "placement-manage", "glance-api",
            "nova-conductor", "nova-scheduler", "uwsgi", "epmd", "/usr/lib/rabbitmq/bin/rabbitmq-server",
            "/usr/bin/keystone-wsgi-public", "/usr/bin/placement-api", "/usr/bin/nova-api-wsgi"]

PORT_NAMES = ["keystone", "placement", "glance", "nova", "neutron", "amqp", "dist", "epmd"]
PORT_BLOCK = 10
PORT_FIRST, PORT_LAST = 20000, 31999  # below Linux's ephemeral range (32768-)
