namespace HookBroker.Client.Internal;

/// <summary>
/// Label and pattern rules of the wire contract: 1–200 chars of <c>[A-Za-z0-9_.:-]</c>; in patterns <c>*</c> is one
/// <c>.</c>-separated segment and a trailing <c>&gt;</c> one or more segments.
/// </summary>
internal static class LabelMatcher
{
    public const int MaxLength = 200;

    /// <summary>Null when <paramref name="pattern"/> is a valid label or pattern, otherwise what is wrong.</summary>
    public static string? Check(string pattern)
    {
        if (string.IsNullOrEmpty(pattern) || pattern.Length > MaxLength)
        {
            return $"must be 1-{MaxLength} characters";
        }

        var segments = pattern.Split('.');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (segment is "*" || (segment is ">" && i == segments.Length - 1 && segments.Length > 1))
            {
                continue;
            }

            foreach (var c in segment)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or ':' or '-'))
                {
                    return $"'{c}' is not allowed (labels use [A-Za-z0-9_.:-]; patterns add a whole '*' segment and a trailing '>' segment)";
                }
            }

            if (segment.Length == 0 && segments.Length > 1)
            {
                return "has an empty '.' segment";
            }
        }

        return null;
    }

    /// <summary>Whether the label <paramref name="label"/> matches <paramref name="pattern"/>.</summary>
    public static bool Matches(string pattern, string label)
    {
        if (!pattern.Contains('*', StringComparison.Ordinal) && !pattern.EndsWith(".>", StringComparison.Ordinal))
        {
            return string.Equals(pattern, label, StringComparison.Ordinal);
        }

        var patternSegments = pattern.Split('.');
        var labelSegments = label.Split('.');
        for (var i = 0; i < patternSegments.Length; i++)
        {
            if (patternSegments[i] == ">" && i == patternSegments.Length - 1)
            {
                return labelSegments.Length > i;
            }

            if (i >= labelSegments.Length || (patternSegments[i] != "*" && patternSegments[i] != labelSegments[i]))
            {
                return false;
            }
        }

        return labelSegments.Length == patternSegments.Length;
    }
}
