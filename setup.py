# Copyright The passthrough-plugin authors.
#
#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
import setuptools

setuptools.setup(setup_requires=['pbr>=6.0'], pbr=True)
