;; A test exporter written in the component-model text format, because
;; stable Rust cannot emit `table.grow`. It exports the `exporter` world's
;; functions with their WIT types; `describe` names it `table-bomb`,
;; `validate` answers ok(output-kind.none), and `export` grows a funcref
;; table by 4096 elements at a time until the host stops it. The build
;; script also makes a variant whose table starts at a huge size, to be
;; stopped when the instance is created.
(component
  (core module $m
    (memory (export "memory") 1)
    (table $t 1 funcref)
    (global $next (mut i32) (i32.const 4096))
    (data (i32.const 256) "table-bomb")
    (data (i32.const 272) "0.1.0")
    (data (i32.const 288) "grows a table without end, for tests")
    ;; component-info: name, version, summary, options (empty list).
    (data (i32.const 512)
      "\00\01\00\00\0a\00\00\00"
      "\10\01\00\00\05\00\00\00"
      "\20\01\00\00\24\00\00\00"
      "\00\00\00\00\00\00\00\00")
    ;; Bytes 768..784 stay zero: result.ok(output-kind.none).

    ;; A bump allocator for the host to lift lists and strings into.
    (func (export "realloc")
      (param $old i32) (param $old-size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (global.set $next (i32.add (local.get $at) (local.get $size)))
      (if (i32.gt_u (global.get $next) (i32.shl (memory.size) (i32.const 16)))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.sub
                    (i32.add (i32.shr_u (global.get $next) (i32.const 16)) (i32.const 1))
                    (memory.size)))
                (i32.const -1))
            (then unreachable))))
      (local.get $at))

    (func (export "describe") (result i32) (i32.const 512))

    (func (export "validate") (param i32 i32) (result i32) (i32.const 768))

    (func (export "export") (param i32) (result i32)
      (loop $grow
        (drop (table.grow $t (ref.null func) (i32.const 4096)))
        (br $grow))
      unreachable)
  )
  (core instance $i (instantiate $m))

  (type $option-info' (record
    (field "key" string)
    (field "help" string)
    (field "default-value" (option string))
    (field "repeatable" bool)))
  (export $option-info "option-info" (type $option-info'))
  (type $component-info' (record
    (field "name" string)
    (field "version" string)
    (field "summary" string)
    (field "options" (list $option-info))))
  (export $component-info "component-info" (type $component-info'))
  (type $output-kind' (enum "none" "file" "directory"))
  (export $output-kind "output-kind" (type $output-kind'))
  (type $error' (variant
    (case "invalid-option" string)
    (case "unsupported" string)
    (case "io" string)
    (case "network" string)
    (case "limit" string)
    (case "invalid-image" string)
    (case "other" string)))
  (export $error "error" (type $error'))
  (type $destination' (record
    (field "preopen" string)
    (field "file" (option string))))
  (export $destination "destination" (type $destination'))
  (type $platform' (record
    (field "architecture" string)
    (field "os" string)
    (field "os-version" (option string))
    (field "os-features" (list string))
    (field "variant" (option string))))
  (export $platform "platform" (type $platform'))
  (type $request' (record
    (field "options" (list (tuple string string)))
    (field "destination" (option $destination))
    (field "instance-id" string)
    (field "host-platform" $platform)
    (field "source-date-epoch" (option u64))))
  (export $request "request" (type $request'))
  (type $response-entry' (record
    (field "key" string)
    (field "value" string)))
  (export $response-entry "response-entry" (type $response-entry'))

  (func (export "describe") (result $component-info)
    (canon lift (core func $i "describe")
      (memory $i "memory") (realloc (func $i "realloc"))))
  (func (export "validate")
    (param "options" (list (tuple string string)))
    (result (result $output-kind (error $error)))
    (canon lift (core func $i "validate")
      (memory $i "memory") (realloc (func $i "realloc"))))
  (func (export "export")
    (param "request" $request)
    (result (result (list $response-entry) (error $error)))
    (canon lift (core func $i "export")
      (memory $i "memory") (realloc (func $i "realloc"))))
)
