# Runs one test program (a Criterion suite, an example, the demo) under
# the cross-compiling emulator (Wine), for the Win32 legs only (native
# legs run programs directly).
#
# - Output goes to a file, not a pipe: a process left behind that
#   inherited it can then never keep this runner waiting.
# - Each attempt has a time limit.
# - A failed program is run once more, because Wine under load now and
#   then fails to create a process (BoxFort reports "Could not spawn test
#   instance"; mproc reports "CreateProcessW: Internal error (error
#   1359)").  The first attempt's output is printed in full, a Criterion
#   summary line in it relabelled so that the totals count the final
#   attempt only; a failure that repeats fails the test.  Native legs
#   never retry.
#   cmake -DEMULATOR=... -DPROGRAM=... -P run-under-wine.cmake
get_filename_component(name "${PROGRAM}" NAME_WE)
set(log "${CMAKE_CURRENT_BINARY_DIR}/${name}.wine.log")
foreach(attempt 1 2)
  file(REMOVE "${log}")
  execute_process(COMMAND ${EMULATOR} ${PROGRAM}
                  RESULT_VARIABLE result TIMEOUT 600
                  OUTPUT_FILE "${log}" ERROR_FILE "${log}.err")
  file(READ "${log}" out)
  file(READ "${log}.err" err)
  if(result EQUAL 0)
    message("${out}${err}")
    if(attempt EQUAL 2)
      message("run-under-wine: ${name} passed when run again (above: the "
              "first attempt)")
    endif()
    return()
  endif()
  if(attempt EQUAL 1)
    string(REPLACE "Synthesis:" "Synthesis (first attempt, failed):"
           first "${out}${err}")
    message("${first}")
    message("run-under-wine: ${name} failed (${result}); running it again")
  endif()
endforeach()
message("${out}${err}")
message(FATAL_ERROR "${PROGRAM} failed twice (${result})")
