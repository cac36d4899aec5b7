// The languages the room offers, and the code a new session starts with.

/** `[value, label]`: the value is what the session stores (and /api/v1/run gets). */
export const LANGUAGES = [
  ["python", "Python"],
  ["javascript", "JavaScript"],
  ["typescript", "TypeScript"],
  ["java", "Java"],
  ["cpp", "C++"],
  ["c", "C"],
  ["csharp", "C#"],
  ["go", "Go"],
  ["rust", "Rust"],
  ["ruby", "Ruby"],
  ["kotlin", "Kotlin"],
  ["swift", "Swift"],
  ["php", "PHP"],
  ["sql", "SQL"],
  ["bash", "Bash"],
  ["plaintext", "Plain text"],
];

/** The label for a language value (the value itself when it is not in the list). */
export function languageLabel(value) {
  return LANGUAGES.find(([v]) => v === value)?.[1] ?? value;
}

const STARTERS = {
  python: 'def solve(nums):\n    # Write your solution here\n    return nums\n\n\nprint(solve([3, 1, 2]))\n',
  javascript: "function solve(nums) {\n  // Write your solution here\n  return nums;\n}\n\nconsole.log(solve([3, 1, 2]));\n",
  typescript: "function solve(nums: number[]): number[] {\n  // Write your solution here\n  return nums;\n}\n\nconsole.log(solve([3, 1, 2]));\n",
  java: 'import java.util.*;\n\npublic class Main {\n    static int[] solve(int[] nums) {\n        // Write your solution here\n        return nums;\n    }\n\n    public static void main(String[] args) {\n        System.out.println(Arrays.toString(solve(new int[]{3, 1, 2})));\n    }\n}\n',
  cpp: "#include <iostream>\n#include <vector>\n\nstd::vector<int> solve(std::vector<int> nums) {\n    // Write your solution here\n    return nums;\n}\n\nint main() {\n    for (int n : solve({3, 1, 2})) std::cout << n << ' ';\n    std::cout << '\\n';\n}\n",
  c: '#include <stdio.h>\n\nint main(void) {\n    // Write your solution here\n    printf("hello\\n");\n    return 0;\n}\n',
  go: 'package main\n\nimport "fmt"\n\nfunc solve(nums []int) []int {\n\t// Write your solution here\n\treturn nums\n}\n\nfunc main() {\n\tfmt.Println(solve([]int{3, 1, 2}))\n}\n',
  rust: "fn solve(nums: Vec<i32>) -> Vec<i32> {\n    // Write your solution here\n    nums\n}\n\nfn main() {\n    println!(\"{:?}\", solve(vec![3, 1, 2]));\n}\n",
};

/** The code a new session of `language` starts with. */
export function starterCode(language) {
  return STARTERS[language] ?? "";
}

/**
 * The languages this server runs (`GET /api/v1/run`), asked once: the page
 * offers Run only for them and says so for the others before anyone
 * presses it. Resolves to an empty set when the server does not say.
 * @type {Promise<Set<string>>}
 */
export const RUNNABLE = fetch("/api/v1/run")
  .then((res) => (res.ok ? res.json() : { languages: [] }))
  .then((body) => new Set(Array.isArray(body?.languages) ? body.languages : []))
  .catch(() => new Set());
