"""The run tags runyard itself reads or writes, named once.

Every tag under the reserved ``runyard/`` prefix is defined here; code that sets or reads one
imports the constant instead of spelling the string, so a search for the constant finds every
writer and reader. A user's own tags must not start with :data:`RESERVED_PREFIX`.
"""

from __future__ import annotations

#: the prefix of every tag below; user tags must avoid it
RESERVED_PREFIX = "runyard/"

#: the code location a run's job came from (its workspace entry's location name)
LOCATION_TAG = "runyard/location"

#: the schedule whose tick created the run
SCHEDULE_TAG = "runyard/schedule"
#: the sensor whose evaluation created the run
SENSOR_TAG = "runyard/sensor"
#: the id of the tick that created the run
TICK_TAG = "runyard/tick"
#: a schedule's or sensor's run key: at most one run per instigator and key
RUN_KEY_TAG = "runyard/run_key"

#: integer; orders the run queue (higher first, then oldest first). As an op tag it orders the
#: steps that are ready at the same time.
PRIORITY_TAG = "runyard/priority"
#: seconds a started run may take before run monitoring terminates it
MAX_RUNTIME_TAG = "runyard/max_runtime"

#: the run a re-execution was made from
PARENT_RUN_ID_TAG = "runyard/parent_run_id"
#: the first run of a chain of re-executions
ROOT_RUN_ID_TAG = "runyard/root_run_id"

#: every tag name above, for documentation and checks
ALL_TAGS = (LOCATION_TAG, SCHEDULE_TAG, SENSOR_TAG, TICK_TAG, RUN_KEY_TAG, PRIORITY_TAG, MAX_RUNTIME_TAG,
            PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG)
