// Prints the prefix of a oneDNN installation (its include/oneapi/dnnl/dnnl.hpp and lib/ with libdnnl), or nothing.
// binding.gyp builds the oneDNN matmul backend when it prints one. SAT_ONEDNN=0 forces a CBLAS-only build;
// DNNLROOT names a prefix outside the system ones.
const fs = require('fs');
const path = require('path');
if (process.env.SAT_ONEDNN === '0' || process.platform !== 'linux') process.exit(0);
const prefixes = [process.env.DNNLROOT, '/usr', '/usr/local'].filter(Boolean);
const found = prefixes.find((p) => fs.existsSync(path.join(p, 'include', 'oneapi', 'dnnl', 'dnnl.hpp')));
if (found) process.stdout.write(found);
