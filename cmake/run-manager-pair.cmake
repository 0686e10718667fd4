# Runs examples/manager_client --self-test, which starts the manager_server
# program, uses it over TCP and shuts it down; passes when the client
# exits with status 0 and its output shows every step.
#
#   cmake -DCLIENT=... -DSERVER=... [-DEMULATOR=...] -P run-manager-pair.cmake
#
# - Natively the client is given the server's path.  Under the emulator
#   (Wine) it finds manager_server.exe next to itself, so that no Unix
#   path has to reach CreateProcess.
# - Output goes to files, not pipes: a server left behind that inherited
#   them could otherwise keep this runner waiting.
# - Under the emulator a failure is run once more, as in
#   run-under-wine.cmake (Wine under load now and then fails to create a
#   process); native runs never retry.
if(EMULATOR)
  set(cmd ${EMULATOR} ${CLIENT} --self-test)
  set(attempts 1 2)
else()
  set(cmd ${CLIENT} --self-test ${SERVER})
  set(attempts 1)
endif()

# What the output must show, in this order.
set(expected
  "server \\(pid [0-9]+\\): serving at 127\\.0\\.0\\.1:[0-9]+"
  "connected to 127\\.0\\.0\\.1:[0-9]+"
  "hello, alice from server pid [0-9]+"
  "hello, bob from server pid [0-9]+"
  "greetings made: 2"
  "queue: 3 items: one two three"
  "the server was asked to shut down"
  "server \\(pid [0-9]+\\): shut down by a client"
  "server \\(pid [0-9]+\\) exited with status 0")

set(log "${CMAKE_CURRENT_BINARY_DIR}/manager_pair.log")
foreach(attempt IN LISTS attempts)
  file(REMOVE "${log}" "${log}.err")
  execute_process(COMMAND ${cmd} RESULT_VARIABLE result TIMEOUT 240
                  OUTPUT_FILE "${log}" ERROR_FILE "${log}.err")
  file(READ "${log}" out)
  file(READ "${log}.err" err)
  message("${out}${err}")
  set(missing "")
  if(result EQUAL 0)
    set(rest "${out}")
    foreach(re IN LISTS expected)
      string(REGEX MATCH "${re}" found "${rest}")
      if(NOT found)
        set(missing "${re}")
        break()
      endif()
      # Look for the next one after this one.
      string(FIND "${rest}" "${found}" at)
      string(LENGTH "${found}" n)
      math(EXPR at "${at} + ${n}")
      string(SUBSTRING "${rest}" ${at} -1 rest)
    endforeach()
    if(NOT missing)
      return()
    endif()
    message("run-manager-pair: the output lacks (in order): ${missing}")
  else()
    message("run-manager-pair: the client failed (${result})")
  endif()
  if(attempt EQUAL 1 AND EMULATOR)
    message("run-manager-pair: running it again")
  endif()
endforeach()
message(FATAL_ERROR "manager_client --self-test failed")
