// NVIDIA GPUs through NVML, loaded with dlopen so keel runs (and reports "no NVIDIA driver") on machines
// without the driver. Only host_probe.cpp calls this; tests fake NvidiaInfo through ProbeSource.
#pragma once

#include "doctor/platform.h"

namespace keel::doctor {

NvidiaInfo probe_nvml();

}  // namespace keel::doctor
