;; bin/build runs this: compiles sse-server.main (and what it requires) into classes/, and
;; fails on any compiler warning (reflection, a shadowed var, ...) in the server's own code.
(let [log (java.io.StringWriter.)]
  (binding [*compile-path* "classes"
            *err* (java.io.PrintWriter. log true)]
    (compile 'sse-server.main))
  (print (str log))
  (flush)
  (when-not (.isEmpty (.trim (str log)))
    (binding [*out* *err*] (println "compiler warnings: fix the lines above (reflection: type-hint the call)"))
    (System/exit 1)))
