// Stand-in for stepflow::dev::RunDevCommand, linked into `stepflow` only while
// tools/dev does not define the stepflow_dev target (see CMakeLists.txt).
// Delete this file and the else() branch there once tools/dev is built.
#include <iostream>

#include "tools/dev/dev_command.h"

namespace stepflow::dev {

int RunDevCommand(int argc, char** argv) {
  std::cerr << "stepflow dev is not built\n";
  return 1;
}

}  // namespace stepflow::dev
