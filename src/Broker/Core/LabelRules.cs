namespace HookBroker.Broker.Core;

/// <summary>The naming rules of labels, patterns and groups. Each check returns null or a message naming the rule.</summary>
public static class LabelRules
{
    /// <summary>Longest label or pattern.</summary>
    public const int MaxLabelLength = 200;

    /// <summary>Longest group name.</summary>
    public const int MaxGroupLength = 100;

    /// <summary>Checks a label: 1-200 chars of [A-Za-z0-9_.:-].</summary>
    public static string? CheckLabel(string? label, string field = "event")
    {
        if (string.IsNullOrEmpty(label))
        {
            return $"{field} is required: a label of 1-{MaxLabelLength} chars of [A-Za-z0-9_.:-]";
        }

        if (label.Length > MaxLabelLength)
        {
            return $"{field} is {label.Length} chars long; labels are at most {MaxLabelLength} chars of [A-Za-z0-9_.:-]";
        }

        foreach (var c in label)
        {
            if (!IsLabelChar(c))
            {
                return $"{field} '{Shorten(label)}' contains '{Printable(c)}'; labels use only [A-Za-z0-9_.:-]";
            }
        }

        return null;
    }

    /// <summary>
    /// Checks a subscription pattern: a label whose `.`-separated segments may be `*` (one segment) or, as the last
    /// segment, `&gt;` (one or more segments).
    /// </summary>
    public static string? CheckPattern(string? pattern, string field = "events")
    {
        if (string.IsNullOrEmpty(pattern))
        {
            return $"{field} contains an empty pattern; use a label or a pattern such as 'user.*' or 'billing.>'";
        }

        if (pattern.Length > MaxLabelLength)
        {
            return $"{field} pattern is {pattern.Length} chars long; at most {MaxLabelLength}";
        }

        var segments = pattern.Split('.');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (segment is "*")
            {
                continue;
            }

            if (segment is ">")
            {
                if (i != segments.Length - 1)
                {
                    return $"{field} pattern '{Shorten(pattern)}' has '>' before its last segment; '>' may only be the last segment (e.g. 'billing.>')";
                }

                continue;
            }

            foreach (var c in segment)
            {
                if (c is '*' or '>')
                {
                    return $"{field} pattern '{Shorten(pattern)}' uses '{c}' inside a segment; a wildcard must be a whole '.'-separated segment (e.g. 'user.*')";
                }

                if (!IsLabelChar(c))
                {
                    return $"{field} pattern '{Shorten(pattern)}' contains '{Printable(c)}'; patterns use [A-Za-z0-9_.:-] plus the segments '*' and a final '>'";
                }
            }
        }

        return null;
    }

    /// <summary>Checks a group name: 1-100 chars of [A-Za-z0-9_.-].</summary>
    public static string? CheckGroup(string? group, string field = "group")
    {
        if (string.IsNullOrEmpty(group))
        {
            return $"{field} is required: 1-{MaxGroupLength} chars of [A-Za-z0-9_.-] (e.g. 'email-sender')";
        }

        if (group.Length > MaxGroupLength)
        {
            return $"{field} is {group.Length} chars long; group names are at most {MaxGroupLength} chars of [A-Za-z0-9_.-]";
        }

        foreach (var c in group)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
            {
                return $"{field} '{Shorten(group)}' contains '{Printable(c)}'; group names use only [A-Za-z0-9_.-]";
            }
        }

        return null;
    }

    /// <summary>True when the pattern has no wildcard, so it matches exactly one label.</summary>
    public static bool IsLiteral(string pattern) => !pattern.Contains('*', StringComparison.Ordinal) && !pattern.Contains('>', StringComparison.Ordinal);

    private static bool IsLabelChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or ':' or '-';

    private static string Printable(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\u{(int)c:x4}" : c.ToString();

    private static string Shorten(string value) => value.Length <= 60 ? value : string.Concat(value.AsSpan(0, 57), "...");
}
