/**
 * Differential tests against Go. Every expectation was produced by running the same template and
 * session through Go 1.26 `text/template` set up exactly as Oathkeeper's `x.NewTemplate`
 * (`missingkey=zero`, its `print` / `printIndex` functions, sprig v3.3.0 `TxtFuncMap`), executed
 * against a `*authn.AuthenticationSession` built from the session below:
 * - `{ out }`: Go's output, byte for byte;
 * - `{ error }`: Go fails (at parse or at execution). Portcullis fails too: at compile time when the
 *   template text alone decides it (`compile`, a TemplateError), otherwise when rendering
 *   (`runtime`, a PipelineError 'template_error'). The Go message is in the comment;
 * - `{ unsupported }`: valid Go that Portcullis deliberately rejects at load (the expected reason).
 * Regenerate these rows with the Go harness if the semantics change; do not edit them by hand.
 */
import { describe, expect, it } from 'vitest'
import { PipelineError } from '../../../src/pipeline/errors.js'
import type { Session } from '../../../src/pipeline/types.js'
import { compileTemplate, TemplateError } from '../../../src/template/index.js'

interface SessionSpec {
  readonly subject: string
  readonly extra: Record<string, unknown>
  readonly header: Record<string, string>
  readonly groups: string[]
  readonly method: string
  readonly scheme: string
  readonly host: string
  readonly path: string
  readonly query: string
  readonly reqHeader: Record<string, string>
}

// prettier-ignore
const SESSIONS: Record<string, SessionSpec> = {
  full: {"subject": "alice", "extra": {"n": 1, "f": 1.5, "big": 1e+21, "m": 1000000, "s": "x", "name": "Bob", "arr": ["a", null, 2, true], "roles": ["admin", "dev"], "obj": {"b": 2, "a": "z", "c": null}, "e": [], "eo": {}, "t": true, "z": 0, "neg": -2.5, "tiny": 1e-05, "html": "<a&b>\u2028\u007f\u0001\b\f", "nil": null, "a": {"b": "deep", "c": {"d": [1, 2, 3]}}, "email": "Alice@Example.COM", "sp": "  padded \t", "uni": "\u00e9\ud83d\ude00\u00ad", "quote": "say \"hi\"\nbye", "dash-key": "dk", "num_str": "42", "frac": 0.1, "small": 1e-07, "i64": 9007199254740993, "tenant": {"id": "t1"}}, "header": {"x-prev": "p", "x-user": "u1"}, "groups": ["g0", "g1"], "method": "GET", "scheme": "https", "host": "ex.com:8443", "path": "/a%20b/c", "query": "x=1&y=a+b&x=2&z=%zz&w=%C3%A9", "reqHeader": {"x-foo": "bar", "authorization": "Bearer t", "x-tenant-id": "acme"}},
  empty: {"subject": "", "extra": {}, "header": {}, "groups": [], "method": "POST", "scheme": "http", "host": "[::1]:80", "path": "/", "query": "", "reqHeader": {}},
  floats: {"subject": "", "extra": {"fl": [366.0, 551.0, -752396.0777007088, 144.0, -383036.35179613123, 3.767646931049202e-27, 81.86, 0.0008512388291062988, 2.251310634590116e-28, 0.6316663152020149, -10761747786171594, 2455553475848594, 14686197781213059, 819.279838, -443157.87097220577, -0.5360862663609285, 690.4937, 309932.92743265745, 2.732576027476654e-19, 201454.52100896253, 3.7476731597369155e-08, -51697.073536482174, 516.3, -276495.08198197896, 771.9379, -43752984370486902, 259.17436, 913030.1526826755, -559075.3540075251, 0.30595608568201804, -74996056184203015, 0.4867054216086417, 937.5, -0.9572066513561766, 251.83, -82445467370910853, 130.8, 0.7456111973542705, 682.3314, -35025.97236227302, 443.2484, -0.6011935816298277, -41607832500440366, 2.25302483722497e-26, 1.848406240620455e-21, 0.9350895653327678, 4.8748762203272504e-21, 32202849551924409, 0.24785414778372794, -47671373545185217, 536.5989, 5.5429132407534715e-14, 1.2523205127212977e+18, 926.67, 2.0238120046278298e-16, 2.2505715073624957e-18, 58829095368690183, 24566707349838005, -0.38443390000251343, 1.833632117267328e-27, -0.8891978251265755, 1.321665992472857e-19, 4.642903278780726e-16, -236746.78677483567, -0.8204932042380402, 892.801171, -0.347730491747301, 733.852123, 0.04751456905703466, 376.618, -898439.3681918517, 51606339721222624, -33494840016690473, 691062.5008130146, 199410.54504253087, 2.2415093302389048e+28, -0.4289129158159666, 32289331877543737, -0.22630330607537608, 3.7429548657331875e-09, -54152559743366091, -189161.34086324216, -16461336726693523, -219677.86552321166, 971.039, 400.0417, 1.0184064213941007e+26, 1015.0600091473365, 238.665, -40084827940822701, -0.09402784844846446, 368.305335, 19293817802303955, 0.5042220065304563, -814803.6856797207, -745505.958315082, 0.8604770142857323, -695863.5222559333, 8.667963623554859e+16, 99.44, 4.496895610237972e-15, -0.4427926993528013, -93720216409819569, 2.8796798305943147e-05, -0.27536021646012854, -376568.51461742667, 903853.7684618982, -93189486623992644, -0.879729491709101, 34781089180684768, 0.0003516485235910663, 4653.019208705676, -0.1351013319528065, 18405568094575607, -918701.0321681551, 2.1821257028862723e-14, 848456.1484400977, 11405304599498658, 3.328978141707908e-30, 0.5676660654283854, -184486.46270136512, 21362358721259116, -653616.2758738355, -0.4121531651350536, 66678081108862001, -496692.50857161405, -991015.7997196503, 7289997068654397, 637.45729, 1000.0, 0.8279103071010379, 242027.5853901466, 1.8755557909235605e-21, 2.8559182033154695e-12, 4852842474261152, 820.369, -85099817788624997, 0.24438919018548066, -13065312711017361, 0.2152894277299613, -47263773873301597, -0.6870422008100694, 92508036462595443, 0.1001036740691903, -48474808770502604, 32092822217558152, 802.282, 79.967954, 1.1338780674401467e+17, 65.52, 31549165242869907, 7298643885625460, 60366681215.15254, -769842.598315094, 375.74, 7.640680321279053e-26, -36117339193955569, -164626.06917801523, 534.113, -0.7325465797754471, 414945.2321129006, 66733347622899565, 0.8070069402515825, 89309683893881209, 813.4, 37752579641769714, 688864.9528719105, -23334266605089897, 371467.4083657563, 4.189084452703278e-15, 921.6779, 0.6794225354584795, -0.3844983311116339, -934172.7789207915, 409905596.45108956, -80991661601284653, 5.226169282492806e-24, -40914664708948597, 910.334142, 7474.638165276847, 65600139594205553, -997401.8853372972, 347.185678, -478849.83453143557, 80989132028530322, 516632878053222.6, 943.9, 0.3784695677904697, 1675.556457129921, 191.57, -0.6880285594647031, -0.621453177054403, -231534.21057820192, 33714784702583929, -93625124081666023, 65437904120666356, 95880359702163152, -0.48038383382146166, -0.1528403091021837, 788988.8384117142, 348.207489, 792.57, -314296.3586695695, 458212.9714558772, 0.8308713200769879, -36902566857389118, -0.7414016287115379, 996.138731, 0.01459141394905327, 0.07836805756322236, 25225274.755372174, 784.0, 7.927760406305276e-30, -0.7969761255608929, 977.0, -38577884472746766, -32503436092369510, 246.6, 4.182581597807001e-21, 1.345887439731142e-05, -0.9429409649884737, 32860285.081243884, 1.7157871624455588e+16, 3.740843210216576e-13, 1.6288836580542087e-18, -88456055636337652, 189.941, 376.0, 752644.6384337433, 0.7384116953161006, 573080.0972781465, -138649.87244706368, 28686705213901489, 187725.44848875422, -834150.5282445876, 472.33, 0.46711484706710804, 459443.550696203, 97910296203107362, 59.78, 4704177826981840, -46075.51715169137, 243694.67756079417, -29063324187354976, 2.8111659059528996e+18, 833.230981, 6.848458671883731e+17, 0.079962381030237, -381059.22033044393, 2352080605000235, 0.7938582041791309, 6.943788540905738e-20, 8.720497427136799e-22, 344.9217, -0.9328418492578898, 767.248963, 926936.4048675271, 114760.49377967836, 0.128952357667802, -258177.8024767565, -25664453890476490, 676.89, 2.1144442464771796e-24, -37373.71594241168, -59716119829004297, 684498.6233373899, -0.7144642273786803, 1.2467554402679173e-05, -0.6644042840499857, 957243.5395934826, -484413.71686978865, -219709.43675296567, 4.436756080135185, -0.12950123786109846, -77152927479082001, 522559.31904745754, 2.911162448630757e+20, -95548244534895150, 7.950582228584354e-16, 149839.45481322752, -7484162846851504, 446.0, 609004.296918682, 0.11072046782305334, -477161.4072071413, 464.8454, -0.7799199950391444, -94665200394066785, 1.4874301934360774e-28, 7336.231611585397, 91493265.75641765, 21266576840206405, 34.37365, -468456.0013125938, -0.13261745517473922, 0.1885783219200654, 0.023264916708607863, 75806868940299209, 0.004497858822793666, -938075.3153226608]}, "header": {}, "groups": [], "method": "POST", "scheme": "http", "host": "[::1]:80", "path": "/", "query": "", "reqHeader": {}},
}

function session(p: SessionSpec): Session {
  const lower = (o: Record<string, string>): Map<string, string> =>
    new Map(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]))
  return {
    subject: p.subject,
    extra: structuredClone(p.extra),
    header: lower(p.header),
    matchContext: {
      regexpCaptureGroups: p.groups,
      request: {
        id: '',
        method: p.method,
        scheme: p.scheme,
        host: p.host,
        path: p.path,
        query: p.query,
        headers: lower(p.reqHeader),
        sourceIp: undefined,
        contextExtensions: {},
      },
    },
  }
}

type Expectation = { out: string } | { error: 'compile' | 'runtime' } | { unsupported: string }

// prettier-ignore
const CASES: [template: string, session: string, expected: Expectation][] = [
  ["plain text", "full", { out: "plain text" }],
  ["", "full", { out: "" }],
  ["{{ print .Subject }}", "full", { out: "alice" }],
  ["{{ .Subject }}", "full", { out: "alice" }],
  ["{{.Subject}}", "full", { out: "alice" }],
  ["Hello {{ .Subject }}!", "full", { out: "Hello alice!" }],
  ["{{ $.Subject }}", "full", { out: "alice" }],
  ["{{ $ }}", "full", { out: "{alice map[a:map[b:deep c:map[d:[1 2 3]]] arr:[a <nil> 2 true] big:1e+21 dash-key:dk e:[] email:Alice@Example.COM eo:map[] f:1.5 frac:0.1 html:<a&b>\u2028\u007f\u0001\b\f i64:9.007199254740992e+15 m:1e+06 n:1 name:Bob neg:-2.5 nil:<nil> num_str:42 obj:map[a:z b:2 c:<nil>] quote:say \"hi\"\nbye roles:[admin dev] s:x small:1e-07 sp:  padded \t t:true tenant:map[id:t1] tiny:1e-05 uni:\u00e9\ud83d\ude00\u00ad z:0] map[X-Prev:[p] X-User:[u1]] {[g0 g1] https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9 GET map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]}}" }],
  ["{{ .Extra.a.b }}", "full", { out: "deep" }],
  ["{{ .Extra.missing }}", "full", { out: "<no value>" }],
  ["{{ print .Extra.missing }}", "full", { out: "" }],
  ["{{ .Extra.nil }}", "full", { out: "<no value>" }],
  ["{{ print .Extra.nil }}", "full", { out: "" }],
  ["{{ .Extra.a.c.d }}", "full", { out: "[1 2 3]" }],
  ["{{ .Extra.a.missing.x }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.a.missing.x>: nil pointer evaluating interface {}.x
  ["{{ .Extra.s.x }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.s.x>: can't evaluate field x in type interface {}
  ["{{ .Extra.arr.x }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.arr.x>: can't evaluate field x in type interface {}
  ["{{ (.Extra.missing).a.b }}", "full", { out: "<no value>" }],
  ["{{ print (((.Extra.a).c).d) }}", "full", { out: "[1 2 3]" }],
  ["{{ (.Extra.a).b }}", "full", { out: "deep" }],
  ["{{ (index .Extra \"a\").b }}", "full", { out: "deep" }],
  ["{{ (index .Extra \"zz\").b }}", "full", { out: "<no value>" }],
  ["{{ index .MatchContext.RegexpCaptureGroups 0 }}", "full", { out: "g0" }],
  ["{{ index .MatchContext.RegexpCaptureGroups 1 }}", "full", { out: "g1" }],
  ["{{ index .MatchContext.RegexpCaptureGroups 2 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .MatchContext.RegexpCaptureGroups 2>: error calling index: reflect: slice index out of
  ["{{ index .MatchContext.RegexpCaptureGroups -1 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .MatchContext.RegexpCaptureGroups -1>: error calling index: index out of range: -1
  ["{{ index .MatchContext.RegexpCaptureGroups \"0\" }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .MatchContext.RegexpCaptureGroups "0">: error calling index: cannot index slice/array 
  ["{{ printIndex .MatchContext.RegexpCaptureGroups 5 }}", "full", { out: "" }],
  ["{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}", "full", { out: "g1" }],
  ["{{ printIndex .Extra.arr 1 }}", "full", { out: "<nil>" }],
  ["{{ printIndex .Extra.arr 2 }}", "full", { out: "2" }],
  ["{{ printIndex .Extra.missing 0 }}", "full", { out: "" }],
  ["{{ printIndex .Extra.s 0 }}", "full", { out: "" }],
  ["{{ printIndex .Extra.arr -1 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <printIndex .Extra.arr -1>: error calling printIndex: reflect: slice index out of range
  ["{{ printIndex .MatchContext.RegexpCaptureGroups .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.n>: wrong type for value; expected int; got float64
  ["{{ printIndex .MatchContext.RegexpCaptureGroups \"1\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <"1">: expected integer; found "1"
  ["{{ printIndex .MatchContext.RegexpCaptureGroups 1.0 }}", "full", { out: "g1" }],
  ["{{ printIndex .MatchContext.RegexpCaptureGroups 1.5 }}", "full", { error: 'compile' }],  // Go: executing "t" at <1.5>: expected integer; found 1.5
  ["{{ 1 | printIndex .MatchContext.RegexpCaptureGroups }}", "full", { out: "g1" }],
  ["{{ .MatchContext.Header.Get \"X-Foo\" }}", "full", { out: "bar" }],
  ["{{ .MatchContext.Header.Get \"x-foo\" }}", "full", { out: "bar" }],
  ["{{ .MatchContext.Header.Get \"X-Missing\" }}", "full", { out: "" }],
  ["{{ .MatchContext.Header.Get \"some_header\" }}", "full", { out: "" }],
  ["{{ .Header.Get \"X-Prev\" }}", "full", { out: "p" }],
  ["{{ \"x-user\" | .Header.Get }}", "full", { out: "u1" }],
  ["{{ .Header.Get .Extra.s }}", "full", { out: "" }],
  ["{{ .Header.Get .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.n>: wrong type for value; expected string; got float64
  ["{{ .Header.Get 1 }}", "full", { error: 'compile' }],  // Go: executing "t" at <1>: expected string; found 1
  ["{{ .Header.Get }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Header.Get>: wrong number of args for Get: want 1 got 0
  ["{{ .Header.Get \"a\" \"b\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Header.Get>: wrong number of args for Get: want 1 got 2
  ["{{ print .MatchContext.Header.Get \"x-tenant-id\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <print>: wrong number of args for print: want 1 got 2
  ["{{ print (.MatchContext.Header.Get \"x-tenant-id\") }}", "full", { out: "acme" }],
  ["{{ .MatchContext.Header.Get \"x-tenant-id\" | upper }}", "full", { out: "ACME" }],
  ["{{ .MatchContext.Method }}", "full", { out: "GET" }],
  ["{{ .MatchContext.URL }}", "full", { out: "https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9" }],
  ["{{ .MatchContext.URL.String }}", "full", { out: "https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9" }],
  ["{{ print .MatchContext.URL }}", "full", { out: "https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9" }],
  ["{{ .MatchContext.URL.Scheme }}|{{ .MatchContext.URL.Host }}|{{ .MatchContext.URL.Path }}|{{ .MatchContext.URL.RawQuery }}", "full", { out: "https|ex.com:8443|/a b/c|x=1&y=a+b&x=2&z=%zz&w=%C3%A9" }],
  ["{{ .MatchContext.URL.Hostname }}|{{ .MatchContext.URL.Port }}|{{ .MatchContext.URL.RequestURI }}|{{ .MatchContext.URL.EscapedPath }}", "full", { out: "ex.com|8443|/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9|/a%20b/c" }],
  ["{{ .MatchContext.URL.Query }}", "full", { out: "map[w:[\u00e9] x:[1 2] y:[a b]]" }],
  ["{{ .MatchContext.URL.Query.Get \"x\" }}|{{ .MatchContext.URL.Query.Get \"y\" }}|{{ .MatchContext.URL.Query.Get \"w\" }}|{{ .MatchContext.URL.Query.Get \"z\" }}", "full", { out: "1|a b|\u00e9|" }],
  ["{{ toJson .MatchContext.URL }}", "full", { out: "{\"Scheme\":\"https\",\"Opaque\":\"\",\"User\":null,\"Host\":\"ex.com:8443\",\"Path\":\"/a b/c\",\"Fragment\":\"\",\"RawQuery\":\"x=1\\u0026y=a+b\\u0026x=2\\u0026z=%zz\\u0026w=%C3%A9\",\"RawPath\":\"\",\"RawFragment\":\"\",\"ForceQuery\":false,\"OmitHost\":false}" }],
  ["{{ toJson .MatchContext.URL.Query }}", "full", { out: "{\"w\":[\"\u00e9\"],\"x\":[\"1\",\"2\"],\"y\":[\"a b\"]}" }],
  ["{{ .MatchContext.RegexpCaptureGroups }}", "full", { out: "[g0 g1]" }],
  ["{{ .Header }}", "full", { out: "map[X-Prev:[p] X-User:[u1]]" }],
  ["{{ .MatchContext.Header }}", "full", { out: "map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]" }],
  ["{{ .MatchContext }}", "full", { out: "{[g0 g1] https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9 GET map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]}" }],
  ["{{ . }}", "full", { out: "{alice map[a:map[b:deep c:map[d:[1 2 3]]] arr:[a <nil> 2 true] big:1e+21 dash-key:dk e:[] email:Alice@Example.COM eo:map[] f:1.5 frac:0.1 html:<a&b>\u2028\u007f\u0001\b\f i64:9.007199254740992e+15 m:1e+06 n:1 name:Bob neg:-2.5 nil:<nil> num_str:42 obj:map[a:z b:2 c:<nil>] quote:say \"hi\"\nbye roles:[admin dev] s:x small:1e-07 sp:  padded \t t:true tenant:map[id:t1] tiny:1e-05 uni:\u00e9\ud83d\ude00\u00ad z:0] map[X-Prev:[p] X-User:[u1]] {[g0 g1] https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9 GET map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]}}" }],
  ["{{ print . }}", "full", { out: "&{alice map[a:map[b:deep c:map[d:[1 2 3]]] arr:[a <nil> 2 true] big:1e+21 dash-key:dk e:[] email:Alice@Example.COM eo:map[] f:1.5 frac:0.1 html:<a&b>\u2028\u007f\u0001\b\f i64:9.007199254740992e+15 m:1e+06 n:1 name:Bob neg:-2.5 nil:<nil> num_str:42 obj:map[a:z b:2 c:<nil>] quote:say \"hi\"\nbye roles:[admin dev] s:x small:1e-07 sp:  padded \t t:true tenant:map[id:t1] tiny:1e-05 uni:\u00e9\ud83d\ude00\u00ad z:0] map[X-Prev:[p] X-User:[u1]] {[g0 g1] https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9 GET map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]}}" }],
  ["{{ print .MatchContext }}", "full", { out: "{[g0 g1] https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9 GET map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]}" }],
  ["{{ toJson . }}", "full", { out: "{\"subject\":\"alice\",\"extra\":{\"a\":{\"b\":\"deep\",\"c\":{\"d\":[1,2,3]}},\"arr\":[\"a\",null,2,true],\"big\":1e+21,\"dash-key\":\"dk\",\"e\":[],\"email\":\"Alice@Example.COM\",\"eo\":{},\"f\":1.5,\"frac\":0.1,\"html\":\"\\u003ca\\u0026b\\u003e\\u2028\u007f\\u0001\\b\\f\",\"i64\":9007199254740992,\"m\":1000000,\"n\":1,\"name\":\"Bob\",\"neg\":-2.5,\"nil\":null,\"num_str\":\"42\",\"obj\":{\"a\":\"z\",\"b\":2,\"c\":null},\"quote\":\"say \\\"hi\\\"\\nbye\",\"roles\":[\"admin\",\"dev\"],\"s\":\"x\",\"small\":1e-7,\"sp\":\"  padded \\t\",\"t\":true,\"tenant\":{\"id\":\"t1\"},\"tiny\":0.00001,\"uni\":\"\u00e9\ud83d\ude00\u00ad\",\"z\":0},\"header\":{\"X-Prev\":[\"p\"],\"X-User\":[\"u1\"]},\"match_context\":{\"regexp_capture_groups\":[\"g0\",\"g1\"],\"url\":{\"Scheme\":\"https\",\"Opaque\":\"\",\"User\":null,\"Host\":\"ex.com:8443\",\"Path\":\"/a b/c\",\"Fragment\":\"\",\"RawQuery\":\"x=1\\u0026y=a+b\\u0026x=2\\u0026z=%zz\\u0026w=%C3%A9\",\"RawPath\":\"\",\"RawFragment\":\"\",\"ForceQuery\":false,\"OmitHost\":false},\"method\":\"GET\",\"header\":{\"Authorization\":[\"Bearer t\"],\"X-Foo\":[\"bar\"],\"X-Tenant-Id\":[\"acme\"]}}}" }],
  ["{{ toJson .MatchContext }}", "full", { out: "{\"regexp_capture_groups\":[\"g0\",\"g1\"],\"url\":{\"Scheme\":\"https\",\"Opaque\":\"\",\"User\":null,\"Host\":\"ex.com:8443\",\"Path\":\"/a b/c\",\"Fragment\":\"\",\"RawQuery\":\"x=1\\u0026y=a+b\\u0026x=2\\u0026z=%zz\\u0026w=%C3%A9\",\"RawPath\":\"\",\"RawFragment\":\"\",\"ForceQuery\":false,\"OmitHost\":false},\"method\":\"GET\",\"header\":{\"Authorization\":[\"Bearer t\"],\"X-Foo\":[\"bar\"],\"X-Tenant-Id\":[\"acme\"]}}" }],
  ["{{ toJson .Header }}", "full", { out: "{\"X-Prev\":[\"p\"],\"X-User\":[\"u1\"]}" }],
  ["{{ .Extra.n }} {{ .Extra.f }} {{ .Extra.big }} {{ .Extra.m }} {{ .Extra.tiny }} {{ .Extra.neg }} {{ .Extra.frac }} {{ .Extra.small }} {{ .Extra.i64 }}", "full", { out: "1 1.5 1e+21 1e+06 1e-05 -2.5 0.1 1e-07 9.007199254740992e+15" }],
  ["{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ -0 }} {{ +5 }} {{ 0.0001 }} {{ 1e21 }} {{ 123456.0 }} {{ 1234567.0 }} {{ -7 }} {{ .5 }} {{ 1. }}", "full", { out: "1 1.5 1000 0 5 0.0001 1e+21 123456 1.234567e+06 -7 0.5 1" }],
  ["{{ true }} {{ false }} {{ .Extra.t }}", "full", { out: "true false true" }],
  ["{{ .Extra.arr }}", "full", { out: "[a <nil> 2 true]" }],
  ["{{ .Extra.obj }}", "full", { out: "map[a:z b:2 c:<nil>]" }],
  ["{{ .Extra.e }}|{{ .Extra.eo }}", "full", { out: "[]|map[]" }],
  ["{{ .Extra }}", "full", { out: "map[a:map[b:deep c:map[d:[1 2 3]]] arr:[a <nil> 2 true] big:1e+21 dash-key:dk e:[] email:Alice@Example.COM eo:map[] f:1.5 frac:0.1 html:<a&b>\u2028\u007f\u0001\b\f i64:9.007199254740992e+15 m:1e+06 n:1 name:Bob neg:-2.5 nil:<nil> num_str:42 obj:map[a:z b:2 c:<nil>] quote:say \"hi\"\nbye roles:[admin dev] s:x small:1e-07 sp:  padded \t t:true tenant:map[id:t1] tiny:1e-05 uni:\u00e9\ud83d\ude00\u00ad z:0]" }],
  ["{{ print .Extra.arr }}", "full", { out: "[a <nil> 2 true]" }],
  ["{{ print .Extra.obj }}", "full", { out: "map[a:z b:2 c:<nil>]" }],
  ["{{ .Extra.roles }}", "full", { out: "[admin dev]" }],
  ["{{ print .Extra.n }}", "full", { out: "1" }],
  ["{{ print 1 }}", "full", { out: "1" }],
  ["{{ print true }}", "full", { out: "true" }],
  ["{{ print nil }}", "full", { out: "" }],
  ["{{ print }}", "full", { error: 'compile' }],  // Go: executing "t" at <print>: wrong number of args for print: want 1 got 0
  ["{{ print \"a\" \"b\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <print>: wrong number of args for print: want 1 got 2
  ["{{ .Extra.quote }}", "full", { out: "say \"hi\"\nbye" }],
  ["{{ print .Extra.uni }}", "full", { out: "\u00e9\ud83d\ude00\u00ad" }],
  ["{{ default \"anon\" .Extra.name }}", "full", { out: "Bob" }],
  ["{{ default \"anon\" .Extra.missing }}", "full", { out: "anon" }],
  ["{{ .Extra.missing | default \"anon\" }}", "full", { out: "anon" }],
  ["{{ .Extra.name | default \"anon\" }}", "full", { out: "Bob" }],
  ["{{ default \"d\" .Extra.z }}|{{ default \"d\" .Extra.e }}|{{ default \"d\" .Extra.eo }}|{{ default \"d\" .Extra.t }}|{{ default \"d\" }}|{{ default \"d\" \"\" }}|{{ default 5 0 }}", "full", { out: "d|d|d|true|d|d|5" }],
  ["{{ default .Header .Extra.missing }}", "full", { out: "map[X-Prev:[p] X-User:[u1]]" }],
  ["{{ default \"x\" .Extra.nil }}", "full", { out: "x" }],
  ["{{ .Extra.roles | join \",\" }}", "full", { out: "admin,dev" }],
  ["{{ join \",\" .Extra.roles }}", "full", { out: "admin,dev" }],
  ["{{ join \",\" .Extra.arr }}", "full", { out: "a,2,true" }],
  ["{{ join \",\" .MatchContext.RegexpCaptureGroups }}", "full", { out: "g0,g1" }],
  ["{{ join \",\" .Extra.s }}", "full", { out: "x" }],
  ["{{ join \",\" .Extra.missing }}", "full", { out: "" }],
  ["{{ join \",\" .Extra.obj }}", "full", { out: "map[a:z b:2 c:<nil>]" }],
  ["{{ join \",\" .Extra.n }}", "full", { out: "1" }],
  ["{{ join 1 .Extra.roles }}", "full", { error: 'compile' }],  // Go: executing "t" at <1>: expected string; found 1
  ["{{ quote .Subject }}", "full", { out: "\"alice\"" }],
  ["{{ quote .Extra.quote }}", "full", { out: "\"say \\\"hi\\\"\\nbye\"" }],
  ["{{ quote .Extra.html .Extra.n nil .Extra.missing \"\u00e9\\u00ad\" }}", "full", { out: "\"<a&b>\\u2028\\x7f\\x01\\b\\f\" \"1\" \"\u00e9\\u00ad\"" }],
  ["{{ quote }}", "full", { out: "" }],
  ["{{ quote .Extra.arr }}", "full", { out: "\"[a <nil> 2 true]\"" }],
  ["{{ quote .Extra.uni }}", "full", { out: "\"\u00e9\ud83d\ude00\\u00ad\"" }],
  ["{{ .Subject | quote }}", "full", { out: "\"alice\"" }],
  ["{{ upper .Subject }}", "full", { out: "ALICE" }],
  ["{{ lower .Extra.email }}", "full", { out: "alice@example.com" }],
  ["{{ .Extra.email | lower }}", "full", { out: "alice@example.com" }],
  ["{{ upper .Extra.missing }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.missing>: wrong type for value; expected string; got interface {}
  ["{{ .Extra.missing | upper }}", "full", { error: 'runtime' }],  // Go: executing "t" at <upper>: invalid value; expected string
  ["{{ upper .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.n>: wrong type for value; expected string; got float64
  ["{{ upper 1 }}", "full", { error: 'compile' }],  // Go: executing "t" at <1>: expected string; found 1
  ["{{ upper \"\u00df\u0130\u01c5\u00e9\" }}|{{ lower \"\u03a3\u0130\u01c5\u00c5\u00c9\" }}", "full", { out: "\u00df\u0130\u01c4\u00c9|\u03c3i\u01c6\u00e5\u00e9" }],
  ["{{ trim .Extra.sp }}|", "full", { out: "padded|" }],
  ["{{ trim \"\\u0085\\ufeff x \\u00a0\" }}", "full", { out: "\ufeff x" }],
  ["{{ trim .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.n>: wrong type for value; expected string; got float64
  ["{{ toJson .Extra.html }}", "full", { out: "\"\\u003ca\\u0026b\\u003e\\u2028\u007f\\u0001\\b\\f\"" }],
  ["{{ toJson .Extra }}", "full", { out: "{\"a\":{\"b\":\"deep\",\"c\":{\"d\":[1,2,3]}},\"arr\":[\"a\",null,2,true],\"big\":1e+21,\"dash-key\":\"dk\",\"e\":[],\"email\":\"Alice@Example.COM\",\"eo\":{},\"f\":1.5,\"frac\":0.1,\"html\":\"\\u003ca\\u0026b\\u003e\\u2028\u007f\\u0001\\b\\f\",\"i64\":9007199254740992,\"m\":1000000,\"n\":1,\"name\":\"Bob\",\"neg\":-2.5,\"nil\":null,\"num_str\":\"42\",\"obj\":{\"a\":\"z\",\"b\":2,\"c\":null},\"quote\":\"say \\\"hi\\\"\\nbye\",\"roles\":[\"admin\",\"dev\"],\"s\":\"x\",\"small\":1e-7,\"sp\":\"  padded \\t\",\"t\":true,\"tenant\":{\"id\":\"t1\"},\"tiny\":0.00001,\"uni\":\"\u00e9\ud83d\ude00\u00ad\",\"z\":0}" }],
  ["{{ .Extra.roles | toJson }}", "full", { out: "[\"admin\",\"dev\"]" }],
  ["{{ toJson .Extra.missing }}", "full", { out: "null" }],
  ["{{ toJson 1 }}", "full", { out: "1" }],
  ["{{ toJson \"a\" }}", "full", { out: "\"a\"" }],
  ["{{ toJson .Subject }}", "full", { out: "\"alice\"" }],
  ["{{ toJson .MatchContext.RegexpCaptureGroups }}", "full", { out: "[\"g0\",\"g1\"]" }],
  ["{{ toJson .Extra.uni }}", "full", { out: "\"\u00e9\ud83d\ude00\u00ad\"" }],
  ["{{ print .Extra | toJson }}", "full", { out: "\"map[a:map[b:deep c:map[d:[1 2 3]]] arr:[a \\u003cnil\\u003e 2 true] big:1e+21 dash-key:dk e:[] email:Alice@Example.COM eo:map[] f:1.5 frac:0.1 html:\\u003ca\\u0026b\\u003e\\u2028\u007f\\u0001\\b\\f i64:9.007199254740992e+15 m:1e+06 n:1 name:Bob neg:-2.5 nil:\\u003cnil\\u003e num_str:42 obj:map[a:z b:2 c:\\u003cnil\\u003e] quote:say \\\"hi\\\"\\nbye roles:[admin dev] s:x small:1e-07 sp:  padded \\t t:true tenant:map[id:t1] tiny:1e-05 uni:\u00e9\ud83d\ude00\u00ad z:0]\"" }],
  ["{{ toJson .Extra.neg }}|{{ toJson .Extra.small }}|{{ toJson .Extra.big }}|{{ toJson .Extra.i64 }}", "full", { out: "-2.5|1e-7|1e+21|9007199254740992" }],
  ["{{ b64enc .Subject }}", "full", { out: "YWxpY2U=" }],
  ["{{ b64enc \"\u00e9\" }}", "full", { out: "w6k=" }],
  ["{{ b64enc .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.n>: wrong type for value; expected string; got float64
  ["{{ .Subject | b64enc }}", "full", { out: "YWxpY2U=" }],
  ["{{ urlquery .Extra.missing }}|{{ urlquery 1 2 \"a\" 3 }}|{{ urlquery \"a b&c/\u00e9~!*'()\" }}|{{ urlquery }}|{{ urlquery .Extra.arr }}", "full", { out: "%3Cno+value%3E|1+2a3|a+b%26c%2F%C3%A9~%21%2A%27%28%29||%5Ba+%3Cnil%3E+2+true%5D" }],
  ["{{ eq .Subject \"alice\" }}", "full", { out: "true" }],
  ["{{ eq .Subject \"bob\" \"alice\" }}", "full", { out: "true" }],
  ["{{ eq .Extra.n 1 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <eq .Extra.n 1>: error calling eq: incompatible types for comparison: float64 and int
  ["{{ eq .Extra.n 1.0 }}", "full", { out: "true" }],
  ["{{ eq .Extra.missing \"x\" }}", "full", { out: "false" }],
  ["{{ eq .Extra.missing .Extra.nil }}", "full", { out: "true" }],
  ["{{ eq nil nil }}", "full", { out: "true" }],
  ["{{ eq .Extra.arr .Extra.arr }}", "full", { error: 'runtime' }],  // Go: executing "t" at <eq .Extra.arr .Extra.arr>: error calling eq: non-comparable type [a <nil> %!s(float64=2) %!s
  ["{{ eq .Extra.obj nil }}", "full", { out: "false" }],
  ["{{ eq .Subject }}", "full", { error: 'runtime' }],  // Go: executing "t" at <eq .Subject>: error calling eq: missing argument for comparison
  ["{{ eq 1 1 }}", "full", { out: "true" }],
  ["{{ eq true .Extra.t }}", "full", { out: "true" }],
  ["{{ eq . . }}", "full", { out: "true" }],
  ["{{ eq .MatchContext.URL .MatchContext.URL }}", "full", { out: "true" }],
  ["{{ eq .Header .Header }}", "full", { error: 'runtime' }],  // Go: executing "t" at <eq .Header .Header>: error calling eq: non-comparable type map[X-Prev:[p] X-User:[u1]]: http
  ["{{ ne .Subject \"bob\" }}", "full", { out: "true" }],
  ["{{ ne 1 2 }}", "full", { out: "true" }],
  ["{{ ne .Extra.n 1 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <ne .Extra.n 1>: error calling ne: incompatible types for comparison: float64 and int
  ["{{ lt 1 2 }}|{{ le 2 2 }}|{{ gt 3 2 }}|{{ ge 1 2 }}|{{ lt \"a\" \"b\" }}|{{ lt .Extra.n 2.0 }}", "full", { out: "true|true|true|false|true|true" }],
  ["{{ lt 1 2.0 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <lt 1 2.0>: error calling lt: incompatible types for comparison: int and float64
  ["{{ lt nil 1 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <lt nil 1>: error calling lt: invalid type for comparison
  ["{{ lt true false }}", "full", { error: 'runtime' }],  // Go: executing "t" at <lt true false>: error calling lt: invalid type for comparison
  ["{{ not .Extra.e }}|{{ not .Subject }}|{{ not 0 }}|{{ not nil }}", "full", { out: "true|false|true|true" }],
  ["{{ not }}", "full", { error: 'compile' }],  // Go: executing "t" at <not>: wrong number of args for not: want 1 got 0
  ["{{ not 1 2 }}", "full", { error: 'compile' }],  // Go: executing "t" at <not>: wrong number of args for not: want 1 got 2
  ["{{ and .Extra.n .Extra.s }}|{{ or .Extra.z .Extra.e }}|{{ and 0 (index .Extra.arr 99) }}|{{ or 1 (index .Extra.arr 99) }}|{{ or \"\" .Extra.missing }}|{{ and 1 \"x\" }}", "full", { out: "x|[]|0|1|<no value>|x" }],
  ["{{ and }}", "full", { error: 'compile' }],  // Go: executing "t" at <and>: wrong number of args for and: want at least 1 got 0
  ["{{ .Extra.s | and 1 }}", "full", { out: "x" }],
  ["{{ 0 | or \"\" }}", "full", { out: "0" }],
  ["{{ len .Extra.roles }}|{{ len .Subject }}|{{ len \"\u00e9\" }}|{{ len .Extra.obj }}|{{ len .Header }}|{{ len .MatchContext.RegexpCaptureGroups }}|{{ .Extra.roles | len }}", "full", { out: "2|5|2|3|2|2|2" }],
  ["{{ len .Extra.missing }}", "full", { error: 'runtime' }],  // Go: executing "t" at <len .Extra.missing>: error calling len: len of nil pointer
  ["{{ len .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <len .Extra.n>: error calling len: len of type float64
  ["{{ len 3 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <len 3>: error calling len: len of type int
  ["{{ index .Extra \"a\" \"b\" }}", "full", { out: "deep" }],
  ["{{ index .Extra \"dash-key\" }}", "full", { out: "dk" }],
  ["{{ index .Extra \"missing\" }}", "full", { out: "<no value>" }],
  ["{{ index .Extra \"missing\" \"x\" }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra "missing" "x">: error calling index: index of nil pointer
  ["{{ index .Extra.arr 9 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra.arr 9>: error calling index: index out of range: 9
  ["{{ index .Extra.arr 4 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra.arr 4>: error calling index: reflect: slice index out of range
  ["{{ index .Extra.arr .Extra.n }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra.arr .Extra.n>: error calling index: cannot index slice/array with type float64
  ["{{ index .Extra.arr 1 }}", "full", { out: "<no value>" }],
  ["{{ index \"abc\" 1 }}", "full", { out: "98" }],
  ["{{ index .Extra.missing 0 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra.missing 0>: error calling index: index of untyped nil
  ["{{ index .Extra 1 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra 1>: error calling index: value has type int; should be string
  ["{{ index .Extra.n 0 }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra.n 0>: error calling index: can't index item of type float64
  ["{{ index .MatchContext.Header \"X-Foo\" }}|{{ index .MatchContext.Header \"x-foo\" }}", "full", { out: "[bar]|[]" }],
  ["{{ index .Extra.roles }}", "full", { out: "[admin dev]" }],
  ["{{ index }}", "full", { error: 'compile' }],  // Go: executing "t" at <index>: wrong number of args for index: want at least 1 got 0
  ["{{ index .Extra nil }}", "full", { error: 'runtime' }],  // Go: executing "t" at <index .Extra nil>: error calling index: value is nil; should be of type string
  ["{{ index .Extra.a.c.d 2 }}", "full", { out: "3" }],
  ["{{ index .MatchContext.URL.Query \"x\" }}", "full", { out: "[1 2]" }],
  ["{{ if .Extra.t }}yes{{ else }}no{{ end }}", "full", { out: "yes" }],
  ["{{ if .Extra.z }}yes{{ else }}no{{ end }}", "full", { out: "no" }],
  ["{{ if .Extra.missing }}yes{{ else }}no{{ end }}", "full", { out: "no" }],
  ["{{ if .Extra.e }}yes{{ else }}no{{ end }}", "full", { out: "no" }],
  ["{{ if .Extra.eo }}y{{ else }}n{{ end }}", "full", { out: "n" }],
  ["{{ if .Extra.arr }}y{{ end }}", "full", { out: "y" }],
  ["{{ if .Subject }}y{{ end }}", "full", { out: "y" }],
  ["{{ if \"\" }}y{{ else }}n{{ end }}", "full", { out: "n" }],
  ["{{ if 0 }}y{{ else if 1 }}z{{ else }}n{{ end }}", "full", { out: "z" }],
  ["{{ if 0 }}y{{ else if .Extra.z }}z{{ else if .Extra.t }}t{{ end }}", "full", { out: "t" }],
  ["{{ if eq .Subject \"alice\" }}admin{{ else }}user{{ end }}", "full", { out: "admin" }],
  ["{{ if and .Extra.t .Extra.s }}y{{ else }}n{{ end }}", "full", { out: "y" }],
  ["{{ if .Extra }}{{ if .Extra.name }}{{ print .Extra.name }}{{ end }}{{ end }}", "full", { out: "Bob" }],
  ["{{ if .Header }}h{{ end }}", "full", { out: "h" }],
  ["{{ if .MatchContext.URL }}u{{ end }}", "full", { out: "u" }],
  ["{{ if . }}d{{ end }}", "full", { out: "d" }],
  ["{{ if .Extra.a.missing.x }}y{{ end }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.a.missing.x>: nil pointer evaluating interface {}.x
  ["{{ if .Extra.nil }}y{{ else }}n{{ end }}", "full", { out: "n" }],
  ["{{ if false }}{{ index .Extra.arr 99 }}{{ end }}ok", "full", { out: "ok" }],
  ["a  {{- .Subject -}}  b", "full", { out: "aaliceb" }],
  ["a \n\t{{- .Subject }} \n b", "full", { out: "aalice \n b" }],
  ["a {{ .Subject -}}\n\n b", "full", { out: "a aliceb" }],
  ["{{- /* c */ -}}", "full", { out: "" }],
  ["x {{- /* multi\nline */ -}} y", "full", { out: "xy" }],
  ["{{/* c */}}x", "full", { out: "x" }],
  ["a\n{{- if .Extra.t }}\n  yes\n{{- end }}\nb", "full", { out: "a\n  yes\nb" }],
  ["{{ .Subject}}x{{.Subject }}", "full", { out: "alicexalice" }],
  ["{{- .Subject}}", "full", { out: "alice" }],
  ["{{-3}}", "full", { out: "-3" }],
  ["{{- 3 -}}", "full", { out: "3" }],
  ["{{ 3 -}} x", "full", { out: "3x" }],
  ["{{ \"a\\tb\\n\\\\\\\"\" }}", "full", { out: "a\tb\n\\\"" }],
  ["{{ `raw\\n{{}}` }}", "full", { out: "raw\\n{{}}" }],
  ["{{ \"\\x41\\101\\u00e9\\U0001F600\\a\" }}", "full", { out: "AA\u00e9\ud83d\ude00\u0007" }],
  ["{{ print \"}}\" }}", "full", { out: "}}" }],
  ["{{ \"{{\" }}", "full", { out: "{{" }],
  ["{{ `a\rb` }}", "full", { out: "ab" }],
  ["{{ .Subject | upper | quote }}", "full", { out: "\"ALICE\"" }],
  ["{{ .Extra.email | lower | b64enc }}", "full", { out: "YWxpY2VAZXhhbXBsZS5jb20=" }],
  ["{{ (print .Subject) | upper }}", "full", { out: "ALICE" }],
  ["{{ upper (print .Subject) }}", "full", { out: "ALICE" }],
  ["{{ print (upper (lower .Extra.email)) }}", "full", { out: "ALICE@EXAMPLE.COM" }],
  ["{{ \"x\" | print }}", "full", { out: "x" }],
  ["{{ .Subject | }}", "full", { out: "alice" }],
  ["{{ 1 | print }}", "full", { out: "1" }],
  ["{{ nil | print }}", "full", { error: 'compile' }],  // Go: executing "t" at <nil>: nil is not a command
  ["{{ (.Subject) }}", "full", { out: "alice" }],
  ["{{ (1) }}", "full", { out: "1" }],
  ["{{ (.Extra.name | default \"x\") | quote }}", "full", { out: "\"Bob\"" }],
  ["{{ printIndex (.MatchContext.RegexpCaptureGroups) 0 }}", "full", { out: "g0" }],
  ["{{ .Subjekt }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Subjekt>: can't evaluate field Subjekt in type *main.AuthenticationSession
  ["{{ .MatchContext.Foo }}", "full", { error: 'compile' }],  // Go: executing "t" at <.MatchContext.Foo>: can't evaluate field Foo in type main.MatchContext
  ["{{ .MatchContext.URL.Foo }}", "full", { error: 'compile' }],  // Go: executing "t" at <.MatchContext.URL.Foo>: can't evaluate field Foo in type *url.URL
  ["{{ .Subject.Foo }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Subject.Foo>: can't evaluate field Foo in type string
  ["{{ .MatchContext.RegexpCaptureGroups.Foo }}", "full", { error: 'compile' }],  // Go: executing "t" at <.MatchContext.RegexpCaptureGroups.Foo>: can't evaluate field Foo in type []string
  ["{{ .Header.Foo }}", "full", { out: "[]" }],
  ["{{ .SetHeader }}", "full", { error: 'compile' }],  // Go: executing "t" at <.SetHeader>: can't evaluate field SetHeader in type *main.AuthenticationSession
  ["{{ .Header.Set \"a\" \"b\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Header.Set>: function Set has 0 return values; should be 1 or 2
  ["{{ .MatchContext.URL.Fragment }}", "full", { out: "" }],
  ["{{ .Subject \"x\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Subject>: Subject has arguments but cannot be invoked as function
  ["{{ .Extra.s \"x\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Extra.s>: s is not a method but has arguments
  ["{{ \"x\" | .Extra.s }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Extra.s>: s is not a method but has arguments
  ["{{ \"x\" | .Subject }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Subject>: Subject has arguments but cannot be invoked as function
  ["{{ \"a\" \"b\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <"a">: can't give argument to non-function "a"
  ["{{ . \"b\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <.>: can't give argument to non-function .
  ["{{ (1) 2 }}", "full", { error: 'compile' }],  // Go: executing "t" at <(1) 2>: can't give argument to non-function 1
  ["{{ nil }}", "full", { error: 'compile' }],  // Go: executing "t" at <nil>: nil is not a command
  ["{{ foo }}", "full", { error: 'compile' }],  // Go: function "foo" not defined
  ["{{ hasPrefix \"a\" \"b\" }}", "full", { unsupported: "function \"hasPrefix\" is not implemented by Portcullis" }],
  ["{{ printf \"%s\" .Subject }}", "full", { unsupported: "function \"printf\" is not implemented by Portcullis" }],
  ["{{ range .Extra.roles }}x{{ end }}", "full", { unsupported: "{{range}} actions" }],
  ["{{ with .Extra }}x{{ end }}", "full", { unsupported: "{{with}} actions" }],
  ["{{ define \"x\" }}{{ end }}", "full", { unsupported: "{{define}} actions" }],
  ["{{ template \"x\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <{{template "x"}}>: template "x" not defined
  ["{{ block \"x\" . }}{{ end }}", "full", { unsupported: "{{block}} actions" }],
  ["{{ $x := 1 }}", "full", { unsupported: "variables" }],
  ["{{ $x }}", "full", { error: 'compile' }],  // Go: undefined variable "$x"
  ["{{ $x = 1 }}", "full", { error: 'compile' }],  // Go: executing "t" at <1>: undefined variable: $x
  ["{{ .Subject", "full", { error: 'compile' }],  // Go: unclosed action
  ["{{ if .Subject }}x", "full", { error: 'compile' }],  // Go: unexpected EOF
  ["{{ end }}", "full", { error: 'compile' }],  // Go: unexpected {{end}}
  ["{{ else }}", "full", { error: 'compile' }],  // Go: unexpected {{else}}
  ["{{ if .X }}{{ else }}{{ else }}{{ end }}", "full", { error: 'compile' }],  // Go: expected end; found {{else}}
  ["{{ }}", "full", { error: 'compile' }],  // Go: missing value for command
  ["{{ if }}{{end}}", "full", { error: 'compile' }],  // Go: missing value for if
  ["{{ \"abc }}", "full", { error: 'compile' }],  // Go: unterminated quoted string
  ["{{ `abc }}", "full", { error: 'compile' }],  // Go: unterminated raw quoted string
  ["{{ 'a' }}", "full", { unsupported: "character constants" }],
  ["{{ 0x10 }}", "full", { unsupported: "number literal 0x10 (only decimal integers and floats are supported)" }],
  ["{{ 010 }}", "full", { unsupported: "octal number literal 010" }],
  ["{{ 1_000 }}", "full", { unsupported: "number literal 1_000 (only decimal integers and floats are supported)" }],
  ["{{ 1i }}", "full", { unsupported: "number literal 1i (only decimal integers and floats are supported)" }],
  ["{{ /* c */ }}", "full", { error: 'compile' }],  // Go: unexpected "/" in command
  ["{{/* c */ }}", "full", { error: 'compile' }],  // Go: comment ends before closing delimiter
  ["{{/* c }}", "full", { error: 'compile' }],  // Go: unclosed comment
  ["{{.Subject-}}", "full", { error: 'compile' }],  // Go: bad character U+002D '-'
  ["{{ .Subject | 1 }}", "full", { error: 'compile' }],  // Go: non executable command in pipeline stage 2
  ["{{ | .Subject }}", "full", { error: 'compile' }],  // Go: unexpected "|" in command
  ["{{ .Subject, }}", "full", { error: 'compile' }],  // Go: unexpected "," in operand
  ["{{ print ( }}", "full", { error: 'compile' }],  // Go: unclosed left paren
  ["{{ print ) }}", "full", { error: 'compile' }],  // Go: unexpected right paren
  ["{{ (.Subject }}", "full", { error: 'compile' }],  // Go: unclosed left paren
  ["{{ \"\\q\" }}", "full", { error: 'compile' }],  // Go: invalid syntax
  ["{{ \"\\'\" }}", "full", { error: 'compile' }],  // Go: invalid syntax
  ["{{ 1.a }}", "full", { error: 'compile' }],  // Go: bad number syntax: "1.a"
  ["{{ true.x }}", "full", { error: 'compile' }],  // Go: unexpected . after term "true"
  ["{{ .Extra.foo-bar }}", "full", { error: 'compile' }],  // Go: bad character U+002D '-'
  ["{{ print if }}", "full", { error: 'compile' }],  // Go: unexpected <if> in operand
  ["{{ else with .X }}", "full", { error: 'compile' }],  // Go: unexpected {{else}}
  ["{{ if 1 }}{{ else with .X }}{{ end }}", "full", { error: 'compile' }],  // Go: unexpected <with> in input
  ["{{ print . . }}", "full", { error: 'compile' }],  // Go: executing "t" at <print>: wrong number of args for print: want 1 got 2
  ["{{ 99999999999999999999 }}", "full", { error: 'compile' }],  // Go: integer overflow: "99999999999999999999"
  ["{{ .Extra.a.b.c.d }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.a.b.c.d>: can't evaluate field c in type interface {}
  ["{{ print .Extra.a.b.c }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.a.b.c>: can't evaluate field c in type interface {}
  ["{{ .MatchContext.Header.Authorization }}", "full", { out: "[Bearer t]" }],
  ["{{ .MatchContext.Header.authorization }}", "full", { out: "[]" }],
  ["{{ .MatchContext.URL.Query.x }}", "full", { out: "[1 2]" }],
  ["{{ .MatchContext.URL.Query.q }}", "full", { out: "[]" }],
  ["{{ .MatchContext.URL.Fragment }}|{{ .MatchContext.URL.Opaque }}|{{ .MatchContext.URL.RawPath }}|{{ .MatchContext.URL.RawFragment }}|{{ .MatchContext.URL.ForceQuery }}|{{ .MatchContext.URL.OmitHost }}|{{ .MatchContext.URL.IsAbs }}|{{ .MatchContext.URL.Redacted }}", "full", { out: "||||false|false|true|https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9" }],
  ["{{ (.Extra.nil).a }}", "full", { out: "<no value>" }],
  ["{{ (.Extra.s).a }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.s>: can't evaluate field a in type string
  ["{{ (.Extra.a).c.d }}", "full", { out: "[1 2 3]" }],
  ["{{ (.Extra.a).missing.x }}", "full", { error: 'runtime' }],  // Go: executing "t" at <.Extra.a>: nil pointer evaluating interface {}.x
  ["{{ (.MatchContext).URL.Host }}", "full", { out: "ex.com:8443" }],
  ["{{ (.MatchContext.URL).Host }}", "full", { out: "ex.com:8443" }],
  ["{{ ($).Subject }}", "full", { out: "alice" }],
  ["{{ (.).Subject }}", "full", { out: "alice" }],
  ["{{ not nil }}", "full", { out: "true" }],
  ["{{ and nil 1 }}", "full", { out: "<no value>" }],
  ["{{ -010 }}", "full", { unsupported: "octal number literal -010" }],
  ["{{ 0 }}", "full", { out: "0" }],
  ["{{ 0.5 }}", "full", { out: "0.5" }],
  ["{{ 00.5 }}", "full", { out: "0.5" }],
  ["{{ .MatchContext.URL.User }}", "full", { unsupported: "*url.URL.User" }],
  ["{{ .Header.Get.X }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Header.Get.X>: wrong number of args for Get: want 1 got 0
  ["{{ .MatchContext.URL.String.X }}", "full", { error: 'compile' }],  // Go: executing "t" at <.MatchContext.URL.String.X>: can't evaluate field X in type string
  ["{{ .MatchContext.URL.Query.Get }}", "full", { error: 'compile' }],  // Go: executing "t" at <.MatchContext.URL.Query.Get>: wrong number of args for Get: want 1 got 0
  ["{{ .MatchContext.URL.Query.Get \"x\" \"y\" }}", "full", { error: 'compile' }],  // Go: executing "t" at <.MatchContext.URL.Query.Get>: wrong number of args for Get: want 1 got 2
  ["{{ print .Extra.a.b | upper }}", "full", { out: "DEEP" }],
  ["{{ .Extra.a.b | printf }}", "full", { unsupported: "function \"printf\" is not implemented by Portcullis" }],
  ["{{ index .Extra.a \"c\" \"d\" 1 }}", "full", { out: "2" }],
  ["{{ index .Extra.a \"c\" \"d\" 1 | print }}", "full", { out: "2" }],
  ["{{ len (index .Extra.a \"c\" \"d\") }}", "full", { out: "3" }],
  ["{{ urlquery .MatchContext.URL }}", "full", { out: "https%3A%2F%2Fex.com%3A8443%2Fa%2520b%2Fc%3Fx%3D1%26y%3Da%2Bb%26x%3D2%26z%3D%25zz%26w%3D%25C3%25A9" }],
  ["{{ urlquery . }}", "full", { out: "%7Balice+map%5Ba%3Amap%5Bb%3Adeep+c%3Amap%5Bd%3A%5B1+2+3%5D%5D%5D+arr%3A%5Ba+%3Cnil%3E+2+true%5D+big%3A1e%2B21+dash-key%3Adk+e%3A%5B%5D+email%3AAlice%40Example.COM+eo%3Amap%5B%5D+f%3A1.5+frac%3A0.1+html%3A%3Ca%26b%3E%E2%80%A8%7F%01%08%0C+i64%3A9.007199254740992e%2B15+m%3A1e%2B06+n%3A1+name%3ABob+neg%3A-2.5+nil%3A%3Cnil%3E+num_str%3A42+obj%3Amap%5Ba%3Az+b%3A2+c%3A%3Cnil%3E%5D+quote%3Asay+%22hi%22%0Abye+roles%3A%5Badmin+dev%5D+s%3Ax+small%3A1e-07+sp%3A++padded+%09+t%3Atrue+tenant%3Amap%5Bid%3At1%5D+tiny%3A1e-05+uni%3A%C3%A9%F0%9F%98%80%C2%AD+z%3A0%5D+map%5BX-Prev%3A%5Bp%5D+X-User%3A%5Bu1%5D%5D+%7B%5Bg0+g1%5D+https%3A%2F%2Fex.com%3A8443%2Fa%2520b%2Fc%3Fx%3D1%26y%3Da%2Bb%26x%3D2%26z%3D%25zz%26w%3D%25C3%25A9+GET+map%5BAuthorization%3A%5BBearer+t%5D+X-Foo%3A%5Bbar%5D+X-Tenant-Id%3A%5Bacme%5D%5D%7D%7D" }],
  ["{{ quote .MatchContext.URL }}", "full", { out: "\"https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9\"" }],
  ["{{ join \",\" .MatchContext.URL }}", "full", { out: "https://ex.com:8443/a%20b/c?x=1&y=a+b&x=2&z=%zz&w=%C3%A9" }],
  ["{{ toJson .Extra.arr }}", "full", { out: "[\"a\",null,2,true]" }],
  ["{{ default .Subject .Extra.name | upper }}", "full", { out: "BOB" }],
  ["{{ default \"x\" .Extra.missing | upper }}", "full", { out: "X" }],
  ["{{ default 1 .Extra.missing | upper }}", "full", { error: 'runtime' }],  // Go: executing "t" at <upper>: wrong type for value; expected string; got int
  ["{{ print .Header }}", "full", { out: "map[X-Prev:[p] X-User:[u1]]" }],
  ["{{ print .MatchContext.Header }}", "full", { out: "map[Authorization:[Bearer t] X-Foo:[bar] X-Tenant-Id:[acme]]" }],
  ["{{ print .MatchContext.URL.Query }}", "full", { out: "map[w:[\u00e9] x:[1 2] y:[a b]]" }],
  ["{{ printIndex .Header 0 }}", "full", { out: "" }],
  ["{{ printIndex .Extra.roles 0 }}", "full", { out: "admin" }],
  ["{{ printIndex .Extra.a.c.d 2 }}", "full", { out: "3" }],
  ["{{ if .MatchContext.RegexpCaptureGroups }}y{{ else }}n{{ end }}", "full", { out: "y" }],
  ["{{ if .MatchContext.Header }}y{{ else }}n{{ end }}", "full", { out: "y" }],
  ["{{ if .MatchContext }}y{{ end }}", "full", { out: "y" }],
  ["{{ .Extra.constructor }}", "full", { out: "<no value>" }],
  ["{{ .Extra.__proto__ }}", "full", { out: "<no value>" }],
  ["{{ index .Extra \"constructor\" }}", "full", { out: "<no value>" }],
  ["{{ .Extra.toString }}", "full", { out: "<no value>" }],
  ["{{ .Extra.hasOwnProperty }}", "full", { out: "<no value>" }],
  ["{{ lower .Subject | printIndex .Extra.roles }}", "full", { error: 'compile' }],  // Go: executing "t" at <.Extra.roles>: wrong type for value; expected int; got string
  ["{{ print (print (print .Subject)) }}", "full", { out: "alice" }],
  ["{{ not (eq .Subject \"alice\") }}", "full", { out: "false" }],
  ["{{ or (eq .Subject \"a\") (eq .Subject \"alice\") }}", "full", { out: "true" }],
  ["{{ if not .Extra.missing }}anon{{ else }}{{ .Extra.missing }}{{ end }}", "full", { out: "anon" }],
  ["{{ .Extra.roles | join \", \" | quote }}", "full", { out: "\"admin, dev\"" }],
  ["{{ \"a\" | quote | quote }}", "full", { out: "\"\\\"a\\\"\"" }],
  ["{{/**/}}", "full", { out: "" }],
  ["{{- /**/ -}}", "full", { out: "" }],
  ["{{/*}}*/}}", "full", { out: "" }],
  ["a{{/* x */ -}}  b", "full", { out: "ab" }],
  ["a  {{- /* x */}}b", "full", { out: "ab" }],
  ["{{ print \"a\" }}{{/* x */}}{{ print \"b\" }}", "full", { out: "ab" }],
  ["{{ .Subject }}\r\n{{- .Subject }}", "full", { out: "alicealice" }],
  ["{{\t.Subject\t}}", "full", { out: "alice" }],
  ["{{\n.Subject\n}}", "full", { out: "alice" }],
  ["{{ .Subject\n-}} x", "full", { out: "alicex" }],
  ["{{ print\n  .Subject }}", "full", { out: "alice" }],
  ["{{ .Subject }}|{{ print .Subject }}|{{ .Extra }}|{{ .Header }}|{{ .MatchContext.RegexpCaptureGroups }}|{{ .MatchContext.URL }}|{{ .MatchContext.URL.Hostname }}|{{ .MatchContext.URL.Port }}|{{ .MatchContext.URL.RequestURI }}", "empty", { out: "||map[]|map[]|[]|http://[::1]:80/|::1|80|/" }],
  ["{{ if .Subject }}y{{ else }}n{{ end }}{{ if .Extra }}y{{ else }}n{{ end }}{{ if .Header }}y{{ else }}n{{ end }}", "empty", { out: "nnn" }],
  ["{{ toJson . }}", "empty", { out: "{\"subject\":\"\",\"extra\":{},\"header\":{},\"match_context\":{\"regexp_capture_groups\":[],\"url\":{\"Scheme\":\"http\",\"Opaque\":\"\",\"User\":null,\"Host\":\"[::1]:80\",\"Path\":\"/\",\"Fragment\":\"\",\"RawQuery\":\"\",\"RawPath\":\"\",\"RawFragment\":\"\",\"ForceQuery\":false,\"OmitHost\":false},\"method\":\"POST\",\"header\":{}}}" }],
  ["{{ . }}", "empty", { out: "{ map[] map[] {[] http://[::1]:80/ POST map[]}}" }],
  ["{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}", "empty", { out: "" }],
  ["{{ index .MatchContext.RegexpCaptureGroups 0 }}", "empty", { error: 'runtime' }],  // Go: executing "t" at <index .MatchContext.RegexpCaptureGroups 0>: error calling index: reflect: slice index out of
  ["{{ .MatchContext.URL.Query }}", "empty", { out: "map[]" }],
  ["{{ len .MatchContext.URL.Query }}", "empty", { out: "0" }],
  ["{{ toJson .MatchContext.URL.Query }}", "empty", { out: "{}" }],
  ["{{ .Extra.x.y }}", "empty", { error: 'runtime' }],  // Go: executing "t" at <.Extra.x.y>: nil pointer evaluating interface {}.y
  ["{{ default \"anon\" .Extra.name }}", "empty", { out: "anon" }],
  ["{{ .Extra.fl }}", "floats", { out: "[366 551 -752396.0777007088 144 -383036.35179613123 3.767646931049202e-27 81.86 0.0008512388291062988 2.251310634590116e-28 0.6316663152020149 -1.0761747786171594e+16 2.455553475848594e+15 1.468619778121306e+16 819.279838 -443157.87097220577 -0.5360862663609285 690.4937 309932.92743265745 2.732576027476654e-19 201454.52100896253 3.7476731597369155e-08 -51697.073536482174 516.3 -276495.08198197896 771.9379 -4.3752984370486904e+16 259.17436 913030.1526826755 -559075.3540075251 0.30595608568201804 -7.4996056184203e+16 0.4867054216086417 937.5 -0.9572066513561766 251.83 -8.244546737091085e+16 130.8 0.7456111973542705 682.3314 -35025.97236227302 443.2484 -0.6011935816298277 -4.160783250044037e+16 2.25302483722497e-26 1.848406240620455e-21 0.9350895653327678 4.8748762203272504e-21 3.220284955192441e+16 0.24785414778372794 -4.767137354518522e+16 536.5989 5.5429132407534715e-14 1.2523205127212977e+18 926.67 2.0238120046278298e-16 2.2505715073624957e-18 5.8829095368690184e+16 2.4566707349838004e+16 -0.38443390000251343 1.833632117267328e-27 -0.8891978251265755 1.321665992472857e-19 4.642903278780726e-16 -236746.78677483567 -0.8204932042380402 892.801171 -0.347730491747301 733.852123 0.04751456905703466 376.618 -898439.3681918517 5.160633972122262e+16 -3.349484001669047e+16 691062.5008130146 199410.54504253087 2.2415093302389048e+28 -0.4289129158159666 3.2289331877543736e+16 -0.22630330607537608 3.7429548657331875e-09 -5.415255974336609e+16 -189161.34086324216 -1.6461336726693524e+16 -219677.86552321166 971.039 400.0417 1.0184064213941007e+26 1015.0600091473365 238.665 -4.00848279408227e+16 -0.09402784844846446 368.305335 1.9293817802303956e+16 0.5042220065304563 -814803.6856797207 -745505.958315082 0.8604770142857323 -695863.5222559333 8.667963623554859e+16 99.44 4.496895610237972e-15 -0.4427926993528013 -9.372021640981957e+16 2.8796798305943147e-05 -0.27536021646012854 -376568.51461742667 903853.7684618982 -9.318948662399264e+16 -0.879729491709101 3.478108918068477e+16 0.0003516485235910663 4653.019208705676 -0.1351013319528065 1.840556809457561e+16 -918701.0321681551 2.1821257028862723e-14 848456.1484400977 1.1405304599498658e+16 3.328978141707908e-30 0.5676660654283854 -184486.46270136512 2.1362358721259116e+16 -653616.2758738355 -0.4121531651350536 6.6678081108862e+16 -496692.50857161405 -991015.7997196503 7.289997068654397e+15 637.45729 1000 0.8279103071010379 242027.5853901466 1.8755557909235605e-21 2.8559182033154695e-12 4.852842474261152e+15 820.369 -8.5099817788625e+16 0.24438919018548066 -1.306531271101736e+16 0.2152894277299613 -4.72637738733016e+16 -0.6870422008100694 9.250803646259544e+16 0.1001036740691903 -4.847480877050261e+16 3.209282221755815e+16 802.282 79.967954 1.1338780674401467e+17 65.52 3.1549165242869908e+16 7.29864388562546e+15 6.036668121515254e+10 -769842.598315094 375.74 7.640680321279053e-26 -3.611733919395557e+16 -164626.06917801523 534.113 -0.7325465797754471 414945.2321129006 6.673334762289957e+16 0.8070069402515825 8.930968389388122e+16 813.4 3.775257964176971e+16 688864.9528719105 -2.3334266605089896e+16 371467.4083657563 4.189084452703278e-15 921.6779 0.6794225354584795 -0.3844983311116339 -934172.7789207915 4.0990559645108956e+08 -8.099166160128466e+16 5.226169282492806e-24 -4.09146647089486e+16 910.334142 7474.638165276847 6.560013959420555e+16 -997401.8853372972 347.185678 -478849.83453143557 8.098913202853032e+16 5.166328780532226e+14 943.9 0.3784695677904697 1675.556457129921 191.57 -0.6880285594647031 -0.621453177054403 -231534.21057820192 3.371478470258393e+16 -9.362512408166602e+16 6.543790412066635e+16 9.588035970216315e+16 -0.48038383382146166 -0.1528403091021837 788988.8384117142 348.207489 792.57 -314296.3586695695 458212.9714558772 0.8308713200769879 -3.690256685738912e+16 -0.7414016287115379 996.138731 0.01459141394905327 0.07836805756322236 2.5225274755372174e+07 784 7.927760406305276e-30 -0.7969761255608929 977 -3.857788447274677e+16 -3.250343609236951e+16 246.6 4.182581597807001e-21 1.345887439731142e-05 -0.9429409649884737 3.2860285081243884e+07 1.7157871624455588e+16 3.740843210216576e-13 1.6288836580542087e-18 -8.845605563633765e+16 189.941 376 752644.6384337433 0.7384116953161006 573080.0972781465 -138649.87244706368 2.868670521390149e+16 187725.44848875422 -834150.5282445876 472.33 0.46711484706710804 459443.550696203 9.791029620310736e+16 59.78 4.70417782698184e+15 -46075.51715169137 243694.67756079417 -2.9063324187354976e+16 2.8111659059528996e+18 833.230981 6.848458671883731e+17 0.079962381030237 -381059.22033044393 2.352080605000235e+15 0.7938582041791309 6.943788540905738e-20 8.720497427136799e-22 344.9217 -0.9328418492578898 767.248963 926936.4048675271 114760.49377967836 0.128952357667802 -258177.8024767565 -2.566445389047649e+16 676.89 2.1144442464771796e-24 -37373.71594241168 -5.9716119829004296e+16 684498.6233373899 -0.7144642273786803 1.2467554402679173e-05 -0.6644042840499857 957243.5395934826 -484413.71686978865 -219709.43675296567 4.436756080135185 -0.12950123786109846 -7.7152927479082e+16 522559.31904745754 2.911162448630757e+20 -9.554824453489515e+16 7.950582228584354e-16 149839.45481322752 -7.484162846851504e+15 446 609004.296918682 0.11072046782305334 -477161.4072071413 464.8454 -0.7799199950391444 -9.466520039406678e+16 1.4874301934360774e-28 7336.231611585397 9.149326575641765e+07 2.1266576840206404e+16 34.37365 -468456.0013125938 -0.13261745517473922 0.1885783219200654 0.023264916708607863 7.580686894029922e+16 0.004497858822793666 -938075.3153226608]" }],
  ["{{ toJson .Extra.fl }}", "floats", { out: "[366,551,-752396.0777007088,144,-383036.35179613123,3.767646931049202e-27,81.86,0.0008512388291062988,2.251310634590116e-28,0.6316663152020149,-10761747786171594,2455553475848594,14686197781213060,819.279838,-443157.87097220577,-0.5360862663609285,690.4937,309932.92743265745,2.732576027476654e-19,201454.52100896253,3.7476731597369155e-8,-51697.073536482174,516.3,-276495.08198197896,771.9379,-43752984370486904,259.17436,913030.1526826755,-559075.3540075251,0.30595608568201804,-74996056184203000,0.4867054216086417,937.5,-0.9572066513561766,251.83,-82445467370910850,130.8,0.7456111973542705,682.3314,-35025.97236227302,443.2484,-0.6011935816298277,-41607832500440370,2.25302483722497e-26,1.848406240620455e-21,0.9350895653327678,4.8748762203272504e-21,32202849551924410,0.24785414778372794,-47671373545185220,536.5989,5.5429132407534715e-14,1252320512721297700,926.67,2.0238120046278298e-16,2.2505715073624957e-18,58829095368690184,24566707349838004,-0.38443390000251343,1.833632117267328e-27,-0.8891978251265755,1.321665992472857e-19,4.642903278780726e-16,-236746.78677483567,-0.8204932042380402,892.801171,-0.347730491747301,733.852123,0.04751456905703466,376.618,-898439.3681918517,51606339721222620,-33494840016690470,691062.5008130146,199410.54504253087,2.2415093302389048e+28,-0.4289129158159666,32289331877543736,-0.22630330607537608,3.7429548657331875e-9,-54152559743366090,-189161.34086324216,-16461336726693524,-219677.86552321166,971.039,400.0417,1.0184064213941007e+26,1015.0600091473365,238.665,-40084827940822700,-0.09402784844846446,368.305335,19293817802303956,0.5042220065304563,-814803.6856797207,-745505.958315082,0.8604770142857323,-695863.5222559333,86679636235548590,99.44,4.496895610237972e-15,-0.4427926993528013,-93720216409819570,0.000028796798305943147,-0.27536021646012854,-376568.51461742667,903853.7684618982,-93189486623992640,-0.879729491709101,34781089180684770,0.0003516485235910663,4653.019208705676,-0.1351013319528065,18405568094575610,-918701.0321681551,2.1821257028862723e-14,848456.1484400977,11405304599498658,3.328978141707908e-30,0.5676660654283854,-184486.46270136512,21362358721259116,-653616.2758738355,-0.4121531651350536,66678081108862000,-496692.50857161405,-991015.7997196503,7289997068654397,637.45729,1000,0.8279103071010379,242027.5853901466,1.8755557909235605e-21,2.8559182033154695e-12,4852842474261152,820.369,-85099817788625000,0.24438919018548066,-13065312711017360,0.2152894277299613,-47263773873301600,-0.6870422008100694,92508036462595440,0.1001036740691903,-48474808770502610,32092822217558150,802.282,79.967954,113387806744014670,65.52,31549165242869908,7298643885625460,60366681215.15254,-769842.598315094,375.74,7.640680321279053e-26,-36117339193955570,-164626.06917801523,534.113,-0.7325465797754471,414945.2321129006,66733347622899570,0.8070069402515825,89309683893881220,813.4,37752579641769710,688864.9528719105,-23334266605089896,371467.4083657563,4.189084452703278e-15,921.6779,0.6794225354584795,-0.3844983311116339,-934172.7789207915,409905596.45108956,-80991661601284660,5.226169282492806e-24,-40914664708948600,910.334142,7474.638165276847,65600139594205550,-997401.8853372972,347.185678,-478849.83453143557,80989132028530320,516632878053222.6,943.9,0.3784695677904697,1675.556457129921,191.57,-0.6880285594647031,-0.621453177054403,-231534.21057820192,33714784702583930,-93625124081666020,65437904120666350,95880359702163150,-0.48038383382146166,-0.1528403091021837,788988.8384117142,348.207489,792.57,-314296.3586695695,458212.9714558772,0.8308713200769879,-36902566857389120,-0.7414016287115379,996.138731,0.01459141394905327,0.07836805756322236,25225274.755372174,784,7.927760406305276e-30,-0.7969761255608929,977,-38577884472746770,-32503436092369510,246.6,4.182581597807001e-21,0.00001345887439731142,-0.9429409649884737,32860285.081243884,17157871624455588,3.740843210216576e-13,1.6288836580542087e-18,-88456055636337650,189.941,376,752644.6384337433,0.7384116953161006,573080.0972781465,-138649.87244706368,28686705213901490,187725.44848875422,-834150.5282445876,472.33,0.46711484706710804,459443.550696203,97910296203107360,59.78,4704177826981840,-46075.51715169137,243694.67756079417,-29063324187354976,2811165905952899600,833.230981,684845867188373100,0.079962381030237,-381059.22033044393,2352080605000235,0.7938582041791309,6.943788540905738e-20,8.720497427136799e-22,344.9217,-0.9328418492578898,767.248963,926936.4048675271,114760.49377967836,0.128952357667802,-258177.8024767565,-25664453890476490,676.89,2.1144442464771796e-24,-37373.71594241168,-59716119829004296,684498.6233373899,-0.7144642273786803,0.000012467554402679173,-0.6644042840499857,957243.5395934826,-484413.71686978865,-219709.43675296567,4.436756080135185,-0.12950123786109846,-77152927479082000,522559.31904745754,291116244863075700000,-95548244534895150,7.950582228584354e-16,149839.45481322752,-7484162846851504,446,609004.296918682,0.11072046782305334,-477161.4072071413,464.8454,-0.7799199950391444,-94665200394066780,1.4874301934360774e-28,7336.231611585397,91493265.75641765,21266576840206404,34.37365,-468456.0013125938,-0.13261745517473922,0.1885783219200654,0.023264916708607863,75806868940299220,0.004497858822793666,-938075.3153226608]" }],
]

describe('templates render exactly as Oathkeeper (Go text/template + sprig) does', () => {
  it.each(CASES)('%j on %s', (template, name, expected) => {
    const s = session(SESSIONS[name] as SessionSpec)
    if ('unsupported' in expected) {
      expect(() => compileTemplate(template)).toThrow(TemplateError)
      expect(() => compileTemplate(template)).toThrow(`unsupported template syntax: ${expected.unsupported}`)
      return
    }
    if ('error' in expected && expected.error === 'compile') {
      expect(() => compileTemplate(template)).toThrow(TemplateError)
      return
    }
    const render = compileTemplate(template)
    if ('error' in expected) {
      let thrown: unknown
      try {
        render(s)
      } catch (e) {
        thrown = e
      }
      expect(thrown).toBeInstanceOf(PipelineError)
      expect(thrown).toMatchObject({ code: 'ERR_INTERNAL', reason: 'template_error' })
      return
    }
    expect(render(s)).toBe(expected.out)
  })
})

/*
The Go harness that produced the rows (go 1.26, github.com/Masterminds/sprig/v3 v3.3.0). It reads
[{"tpl": …, "sess": SessionSpec}] on stdin and prints [{"out"} | {"parseErr"} | {"execErr"}].

// Golden generator: Oathkeeper x.NewTemplate semantics (text/template, missingkey=zero, print/printIndex, sprig).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

func NewTemplate(id string) *template.Template {
	return template.New(id).
		Option("missingkey=zero").
		Funcs(template.FuncMap{
			"print": func(i interface{}) string {
				if i == nil {
					return ""
				}
				return fmt.Sprintf("%v", i)
			},
			"printIndex": func(element interface{}, i int) string {
				if element == nil {
					return ""
				}
				list := reflect.ValueOf(element)
				if list.Kind() == reflect.Slice && i < list.Len() {
					return fmt.Sprintf("%v", list.Index(i))
				}
				return ""
			},
		}).
		Funcs(sprig.TxtFuncMap())
}

type AuthenticationSession struct {
	Subject      string                 `json:"subject"`
	Extra        map[string]interface{} `json:"extra"`
	Header       http.Header            `json:"header"`
	MatchContext MatchContext           `json:"match_context"`
}

type MatchContext struct {
	RegexpCaptureGroups []string    `json:"regexp_capture_groups"`
	URL                 *url.URL    `json:"url"`
	Method              string      `json:"method"`
	Header              http.Header `json:"header"`
}

type Sess struct {
	Subject   string                 `json:"subject"`
	Extra     map[string]interface{} `json:"extra"`
	Header    map[string]string      `json:"header"`
	Groups    []string               `json:"groups"`
	Method    string                 `json:"method"`
	Scheme    string                 `json:"scheme"`
	Host      string                 `json:"host"`
	Path      string                 `json:"path"`
	Query     string                 `json:"query"`
	ReqHeader map[string]string      `json:"reqHeader"`
}

type Case struct {
	Tpl  string `json:"tpl"`
	Sess Sess   `json:"sess"`
}
type Result struct {
	Out   *string `json:"out,omitempty"`
	Parse string  `json:"parseErr,omitempty"`
	Exec  string  `json:"execErr,omitempty"`
}

func main() {
	var cases []Case
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	res := make([]Result, len(cases))
	for i, c := range cases {
		t, err := NewTemplate("t").Parse(c.Tpl)
		if err != nil {
			res[i].Parse = err.Error()
			continue
		}
		h := http.Header{}
		for k, v := range c.Sess.Header {
			h.Set(k, v)
		}
		rh := http.Header{}
		for k, v := range c.Sess.ReqHeader {
			rh.Set(k, v)
		}
		u := &url.URL{Scheme: c.Sess.Scheme, Host: c.Sess.Host, RawQuery: c.Sess.Query}
		if p, err := url.PathUnescape(c.Sess.Path); err == nil {
			u.Path = p
			if u.EscapedPath() != c.Sess.Path {
				u.RawPath = c.Sess.Path
			}
		}
		s := &AuthenticationSession{Subject: c.Sess.Subject, Extra: c.Sess.Extra, Header: h,
			MatchContext: MatchContext{RegexpCaptureGroups: c.Sess.Groups, URL: u, Method: c.Sess.Method, Header: rh}}
		var b bytes.Buffer
		if err := t.Execute(&b, s); err != nil {
			res[i].Exec = err.Error()
			continue
		}
		o := b.String()
		res[i].Out = &o
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	enc.Encode(res)
}
*/
