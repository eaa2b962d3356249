# Runs `bench_oneid --quick` and checks that it exits 0 and prints the whole table
# (its header and its first and last figures). Called by ctest with -DBENCH=<path>.
execute_process(COMMAND ${BENCH} --quick RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bench_oneid --quick exited with ${rc}")
endif()
foreach(expected "figure +value +target +result" "ingest throughput, records/s"
        "pairwise precision +[0-9.]+ +>= 0.995 +(PASS|MISS)" "naive CC largest cluster")
  if(NOT out MATCHES "${expected}")
    message(FATAL_ERROR "bench_oneid --quick did not print: ${expected}")
  endif()
endforeach()
