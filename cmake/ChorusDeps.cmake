# Third-party libraries: LibTorch (PyPI wheel) and Debian packages.
if(NOT DEFINED Torch_DIR AND NOT CMAKE_PREFIX_PATH MATCHES "torch")
  # Let a configured Python (the setup script's venv) tell where the wheel keeps its CMake files.
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_FOUND)
    execute_process(COMMAND ${Python3_EXECUTABLE} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_torch_prefix)
      list(APPEND CMAKE_PREFIX_PATH ${_torch_prefix})
    endif()
  endif()
endif()
if(NOT CHORUS_WITH_CUDA)
  # A CUDA-enabled wheel still runs on the CPU; keep its config from looking for nvcc.
  set(CAFFE2_USE_CUDA OFF)
endif()
find_package(Torch REQUIRED)
if(CHORUS_WITH_CUDA)
  # LibTorch's config appends -gencode flags for its own list; ours are per target.
  set(CMAKE_CUDA_ARCHITECTURES ${CHORUS_CUDA_ARCHITECTURES})
endif()
# LibTorch's global flags (e.g. -D_GLIBCXX_USE_CXX11_ABI) come via TORCH_CXX_FLAGS.
string(APPEND CMAKE_CXX_FLAGS " ${TORCH_CXX_FLAGS}")

find_package(Threads REQUIRED)
# The Debian libraries the layers above kernels/ need (not built with CHORUS_KERNELS_ONLY).
if(NOT CHORUS_KERNELS_ONLY)
  find_package(ZLIB REQUIRED)  # gzipped data sets
  find_package(HDF5 REQUIRED COMPONENTS C CXX)
  find_package(yaml-cpp REQUIRED)
  find_package(nlohmann_json 3.10 REQUIRED)
  find_package(CLI11 REQUIRED)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

  # HDF5's FindHDF5 gives variables, not a target: wrap them once.
  add_library(chorus_hdf5 INTERFACE)
  target_include_directories(chorus_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
  target_link_libraries(chorus_hdf5 INTERFACE ${HDF5_CXX_LIBRARIES} ${HDF5_C_LIBRARIES})
  target_compile_definitions(chorus_hdf5 INTERFACE ${HDF5_DEFINITIONS})
endif()

# chorus_torch: LibTorch for Chorus targets, with one shared precompiled header.
# Only translation units that need tensors link this; the kernel core does not.
add_library(chorus_torch INTERFACE)
# The wheel's libtorch.so exports std::filesystem functions of its own toolchain
# (remove_all among them) that crash when called from code built with Debian's
# libstdc++. The dynamic linker binds each symbol to the first library in load
# order, so libstdc++ is named before LibTorch to make it come first.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_link_libraries(chorus_torch INTERFACE -Wl,--push-state,--no-as-needed stdc++ -Wl,--pop-state)
endif()
target_link_libraries(chorus_torch INTERFACE ${TORCH_LIBRARIES})
# The wheel's ATen runs at::parallel_for through OpenMP, and its header only
# spreads work over threads when the including file is compiled with OpenMP;
# without -fopenmp every at::parallel_for in our code runs on one thread.
# libgomp.so.1 resolves to the copy the wheel ships (same soname, first on the
# runpath), so torch::set_num_threads governs our loops too.
target_compile_options(chorus_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fopenmp>)
target_link_options(chorus_torch INTERFACE -fopenmp)
target_include_directories(chorus_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})

if(CHORUS_USE_PCH)
  add_library(chorus_torch_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cpp)
  target_link_libraries(chorus_torch_pch PUBLIC chorus_torch)
  target_precompile_headers(chorus_torch_pch PRIVATE <torch/torch.h>)
endif()

# chorus_use_torch(target): link LibTorch and reuse the shared precompiled header.
function(chorus_use_torch target)
  target_link_libraries(${target} PRIVATE chorus_torch)
  if(CHORUS_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM chorus_torch_pch)
  endif()
endfunction()
