# Runs one Criterion test program under the cross-compiling emulator
# (Wine) and retries it once when -- and only when -- BoxFort could not
# start its worker process ("Could not spawn test instance"), which a
# cold or loaded wineserver occasionally causes.  Any test failure is
# reported as it is.
#   cmake -DEMULATOR=... -DPROGRAM=... -P run-criterion.cmake
foreach(attempt 1 2)
  execute_process(COMMAND ${EMULATOR} ${PROGRAM}
                  RESULT_VARIABLE result
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(result EQUAL 0)
    return()
  endif()
  if(NOT "${out}${err}" MATCHES "Could not spawn test instance")
    break()
  endif()
  message("run-criterion: BoxFort could not start a worker; retrying once")
endforeach()
message(FATAL_ERROR "${PROGRAM} failed (${result})")
