;; bin/build runs this: compiles sse-server.main (and what it requires) into classes/, and
;; fails when the server's own code needs reflection.
(let [log (java.io.StringWriter.)]
  (binding [*compile-path* "classes"
            *err* (java.io.PrintWriter. log true)]
    (compile 'sse-server.main))
  (print (str log))
  (flush)
  (when (re-find #"Reflection warning" (str log))
    (binding [*out* *err*] (println "reflection warnings: type-hint the calls above"))
    (System/exit 1)))
