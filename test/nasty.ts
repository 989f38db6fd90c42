/** Strings that break naive escaping in one language or another. */
export const NASTY = [
  'plain',
  '{"json":"with \\"quotes\\" only"}',
  '',
  `double " single ' back \\ slash`,
  'line\nbreak\r\ncrlf\rcr\ttab',
  '{{handlebars}} {{{triple}}}',
  'comment */ end */ /* start',
  '</script><script>alert(1)</script>',
  '${js} #{ruby} $php @perl %s %d \\(swift)',
  '\\u0022 java unicode escape \\x41 \\101',
  'NUL \u0000 BEL \u0007 DEL \u007f',
  'line separators \u2028 \u2029 NEL \u0085',
  'é 中文 🎉 𝄞',
  '""" triple quotes \'\'\' ]] -- --[[ ]=]',
];
