package modules

import "syscall"

// syscallENOTDIR: a search directory that is a file is skipped like a missing one.
const syscallENOTDIR = syscall.ENOTDIR
