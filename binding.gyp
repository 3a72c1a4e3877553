{
  "variables": {
    # Prefix of oneDNN (libdnnl-dev) when installed: the float matmuls then run on oneDNN, with CBLAS kept
    # behind a run-time switch; empty builds the CBLAS backend only (macOS Accelerate, or SAT_ONEDNN=0).
    # Symbols are hidden except the module's entry point: two builds loaded into one process (checks/native-ab.ts)
    # then never bind to each other's functions or inline variables.
    "onednn_prefix%": "<!(node native/find-onednn.cjs)"
  },
  "targets": [
    {
      "target_name": "sat_native",
      "sources": ["native/binding.cc", "native/train.cc", "native/infer.cc", "native/adam.cc", "native/gemm.cc",
                  "native/onednn.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [
        ["OS=='linux'", {
          "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fopenmp", "-march=native", "-fno-trapping-math", "-fno-math-errno", "-Wno-unknown-pragmas",
                        "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
          "ldflags": ["-fopenmp"],
          "libraries": ["-lopenblas"]
        }],
        ["OS=='linux' and onednn_prefix!=''", {
          "defines": ["SAT_HAVE_ONEDNN"],
          "include_dirs": ["<(onednn_prefix)/include"],
          "libraries": ["-L<(onednn_prefix)/lib", "-ldnnl"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_OPTIMIZATION_LEVEL": "3",
            "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
            "OTHER_CPLUSPLUSFLAGS": ["-fno-trapping-math", "-fno-math-errno", "-Wno-unknown-pragmas"]
          },
          "libraries": ["-framework Accelerate"]
        }]
      ]
    }
  ]
}
